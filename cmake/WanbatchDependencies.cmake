# Finds every dependency from system packages. Works with Debian 12 (CMake 3.25, Boost 1.74) and
# the GPU machine (CMake 4, Boost 1.83, cuDNN/NCCL in the system library folders).

find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)
# We use the C API only; keep mpi.h from pulling in Open MPI's deprecated C++ bindings.
set_property(TARGET MPI::MPI_C APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS
             OMPI_SKIP_MPICXX MPICH_SKIP_MPICXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(nlohmann_json 3.10 REQUIRED)
# Boost.Program_options and Boost.Log are the executable's (app/) only; the libraries do without
# them. Some GPU hosts ship Boost's headers but not these compiled libraries: there (AUTO) the
# libraries and the CUDA tests still build, without the wanbatch executable. CMake 4 no longer
# ships FindBoost; Boost's own config files exist in both versions we support.
set(WANBATCH_APP AUTO CACHE STRING "Build the wanbatch executable (needs Boost libraries): AUTO, ON or OFF")
set_property(CACHE WANBATCH_APP PROPERTY STRINGS AUTO ON OFF)
set(WANBATCH_HAVE_APP OFF)
if(NOT WANBATCH_APP STREQUAL "OFF")
  if(WANBATCH_APP STREQUAL "ON")
    find_package(Boost 1.74 REQUIRED CONFIG COMPONENTS program_options log log_setup)
  else()
    find_package(Boost 1.74 QUIET CONFIG COMPONENTS program_options log log_setup)
  endif()
  # Boost_FOUND can be true with only the headers; the component targets tell.
  if(TARGET Boost::program_options AND TARGET Boost::log AND TARGET Boost::log_setup)
    set(WANBATCH_HAVE_APP ON)
  else()
    message(WARNING "Boost.Program_options / Boost.Log libraries not found: building the "
                    "libraries and tests without the wanbatch executable "
                    "(install libboost-program-options-dev libboost-log-dev)")
  endif()
endif()
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)

# HDF5 as one imported target whatever the FindHDF5 version provides.
if(NOT TARGET wanbatch_hdf5)
  add_library(wanbatch_hdf5 INTERFACE)
  target_include_directories(wanbatch_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
  target_link_libraries(wanbatch_hdf5 INTERFACE ${HDF5_LIBRARIES})
  target_compile_definitions(wanbatch_hdf5 INTERFACE ${HDF5_DEFINITIONS})
endif()

# FFmpeg libav for video output.
set(WANBATCH_HAVE_VIDEO OFF)
if(NOT WANBATCH_VIDEO STREQUAL "OFF")
  if(WANBATCH_VIDEO STREQUAL "ON")
    pkg_check_modules(LIBAV REQUIRED IMPORTED_TARGET libavcodec libavformat libavutil libswscale)
  else()
    pkg_check_modules(LIBAV IMPORTED_TARGET libavcodec libavformat libavutil libswscale)
  endif()
  if(LIBAV_FOUND)
    set(WANBATCH_HAVE_VIDEO ON)
  else()
    message(STATUS "FFmpeg libav not found: building without video output (latents only)")
  endif()
endif()

# CUDA toolkit, cuBLAS/cuBLASLt, cuDNN and NCCL.
set(WANBATCH_HAVE_CUDA OFF)
if(NOT WANBATCH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    # CMake 3.25 (Debian 12) knows no C++20 dialect flag for nvcc and refuses to generate for
    # CUDA_STANDARD 20; nvcc 12+ takes -std=c++20. CMake 4 knows it and skips this.
    if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    find_package(CUDAToolkit REQUIRED)
    get_filename_component(_cuda_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
    set(_cuda_lib_hints ${CUDAToolkit_LIBRARY_DIR} ${_cuda_root}/lib ${_cuda_root}/lib64)
    set(_cuda_inc_hints ${CUDAToolkit_INCLUDE_DIRS} ${_cuda_root}/include)
    find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_cuda_inc_hints} PATH_SUFFIXES x86_64-linux-gnu)
    find_library(CUDNN_LIBRARY cudnn HINTS ${_cuda_lib_hints})
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${_cuda_inc_hints})
    find_library(NCCL_LIBRARY nccl HINTS ${_cuda_lib_hints})
    if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
      set(WANBATCH_HAVE_CUDA ON)
      add_library(wanbatch_cudnn INTERFACE)
      target_include_directories(wanbatch_cudnn SYSTEM INTERFACE ${CUDNN_INCLUDE_DIR})
      target_link_libraries(wanbatch_cudnn INTERFACE ${CUDNN_LIBRARY})
      add_library(wanbatch_nccl INTERFACE)
      target_include_directories(wanbatch_nccl SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
      target_link_libraries(wanbatch_nccl INTERFACE ${NCCL_LIBRARY})
      message(STATUS "CUDA ${CUDAToolkit_VERSION} for ${CMAKE_CUDA_ARCHITECTURES}; "
                     "cuDNN ${CUDNN_LIBRARY}; NCCL ${NCCL_LIBRARY}")
    else()
      set(_missing "cuDNN: ${CUDNN_LIBRARY} ${CUDNN_INCLUDE_DIR}, NCCL: ${NCCL_LIBRARY} ${NCCL_INCLUDE_DIR}")
      if(WANBATCH_CUDA STREQUAL "ON")
        message(FATAL_ERROR "WANBATCH_CUDA=ON but cuDNN or NCCL is missing (${_missing})")
      endif()
      message(STATUS "CUDA found but cuDNN or NCCL missing (${_missing}): building without CUDA")
    endif()
  elseif(WANBATCH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "WANBATCH_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  else()
    message(STATUS "No CUDA compiler: building the CPU backend only")
  endif()
endif()
