#include "io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace wanbatch::io {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void Checkpoint::add_file(const std::string& path) {
  files_.push_back(SafetensorsFile::open(path));
  const size_t index = files_.size() - 1;
  for (const std::string& name : files_.back()->names()) {
    auto [it, inserted] = owner_.emplace(name, index);
    if (!inserted) {
      throw make_error(path_, ": tensor '", name, "' is in both ", files_[it->second]->path(),
                       " and ", path);
    }
  }
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  c.path_ = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw make_error("cannot open ", path, ": no such file or folder");

  std::string index_path;
  if (fs::is_directory(path)) {
    std::vector<std::string> indexes, shards;
    for (const auto& entry : fs::directory_iterator(path)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind('.', 0) == 0) continue;  // hidden and temporary files
      if (ends_with(name, ".safetensors.index.json")) indexes.push_back(entry.path().string());
      if (ends_with(name, ".safetensors")) shards.push_back(entry.path().string());
    }
    WB_CHECK(indexes.size() <= 1, path, ": more than one *.safetensors.index.json; name one");
    if (indexes.empty()) {
      WB_CHECK(!shards.empty(), path, ": no .safetensors files in this folder");
      std::sort(shards.begin(), shards.end());
      for (const std::string& shard : shards) c.add_file(shard);
      return c;
    }
    index_path = indexes.front();
  } else if (ends_with(path, ".json")) {
    index_path = path;
  } else {
    c.add_file(path);
    return c;
  }

  // Sharded: {"metadata": {...}, "weight_map": {tensor: shard file}}
  nlohmann::json index;
  try {
    std::ifstream in(index_path);
    WB_CHECK(in.good(), "cannot open ", index_path);
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw make_error(index_path, ": not a valid index JSON (", e.what(), ")");
  }
  WB_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
           index_path, ": no weight_map object");
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    WB_CHECK(shard.is_string(), index_path, ": weight_map entry '", name, "' is not a file name");
    by_shard[shard.get<std::string>()].push_back(name);
  }
  c.path_ = index_path;
  for (const auto& [shard, names] : by_shard) {
    const std::string shard_path = (dir / shard).string();
    WB_CHECK(fs::exists(shard_path), index_path, ": shard ", shard_path, " is missing");
    c.files_.push_back(SafetensorsFile::open(shard_path));
    for (const std::string& name : names) {
      WB_CHECK(c.files_.back()->contains(name), index_path, ": tensor '", name,
               "' is not in its shard ", shard_path);
      c.owner_[name] = c.files_.size() - 1;
    }
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> names;
  for (const auto& [name, index] : owner_) names.push_back(name);
  return names;
}

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) throw make_error(path_, ": no tensor '", name, "'");
  return *files_[it->second];
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  return file_of(name).info(name);
}

core::Tensor Checkpoint::tensor(const std::string& name) const {
  return file_of(name).tensor(name);
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path());
  return paths;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, index] : owner_) total += files_[index]->info(name).bytes;
  return total;
}

std::string Checkpoint::fingerprint() const {
  constexpr uint64_t kSample = 4096;
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a 64
  auto mix = [&hash](const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  };
  std::vector<unsigned char> buffer;
  for (const std::string& name : names()) {
    const TensorInfo& t = info(name);
    mix(name.data(), name.size() + 1);
    const std::string dtype(core::dtype_name(t.dtype));
    mix(dtype.data(), dtype.size() + 1);
    for (int64_t d : t.shape) mix(&d, sizeof d);
    const SafetensorsFile& file = file_of(name);
    for (const auto& [begin, end] : {std::pair<uint64_t, uint64_t>{0, std::min(kSample, t.bytes)},
                                     {t.bytes - std::min(kSample, t.bytes), t.bytes}}) {
      buffer.resize(end - begin);
      if (!buffer.empty()) file.read_range(name, begin, end, buffer.data());
      mix(buffer.data(), buffer.size());
    }
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace wanbatch::io
