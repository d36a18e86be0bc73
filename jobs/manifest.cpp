#include "jobs/manifest.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "model/sampling/latent_shape.h"
#include "model/sampling/schedule.h"

namespace wanbatch::jobs {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kMaxIdLength = 128;
// Sanity bounds, far above what any Wan model takes, so later size arithmetic cannot overflow.
constexpr int64_t kMaxSide = 16384, kMaxFrames = 10001, kMaxSteps = 1000, kMaxFps = 1000;

constexpr std::array<const char*, 15> kKnownKeys = {
    "id",     "prompt", "negative_prompt", "seed",  "width",      "height", "frames", "steps",
    "solver", "shift",  "guide_scale",     "image", "init_noise", "fps",    nullptr};

std::string known_keys_list() {
  std::string list;
  for (const char* key : kKnownKeys) {
    if (!key) break;
    if (!list.empty()) list += ", ";
    list += key;
  }
  return list;
}

bool is_known_key(const std::string& key) {
  for (const char* known : kKnownKeys)
    if (known && key == known) return true;
  return false;
}

const char* type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_float:
      return "a fractional number";
    default:
      return "an integer";
  }
}

// The errors of one line: "NAME:LINE: FIELD: message".
class LineErrors {
 public:
  LineErrors(std::vector<std::string>& out, const std::string& name, int64_t line)
      : out_(out), prefix_(name + ":" + std::to_string(line) + ": ") {}
  void add(const std::string& field, const std::string& message) {
    out_.push_back(prefix_ + (field.empty() ? "" : field + ": ") + message);
    ++count_;
  }
  size_t count() const { return count_; }

 private:
  std::vector<std::string>& out_;
  std::string prefix_;
  size_t count_ = 0;
};

// A positive integer field no larger than `max`; nullopt (and an error) otherwise.
std::optional<int64_t> get_positive_int(const json& object, const char* field, int64_t max,
                                        LineErrors& errors) {
  const json& value = object.at(field);
  if (!value.is_number_integer()) {
    errors.add(field, std::string("must be an integer, not ") + type_name(value));
    return std::nullopt;
  }
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(max)) {
    errors.add(field, value.dump() + " is not in [1, " + std::to_string(max) + "]");
    return std::nullopt;
  }
  const int64_t number = value.get<int64_t>();
  if (number < 1 || number > max) {
    errors.add(field, value.dump() + " is not in [1, " + std::to_string(max) + "]");
    return std::nullopt;
  }
  return number;
}

std::optional<double> get_number(const json& value, const std::string& field, double min,
                                 bool min_inclusive, LineErrors& errors) {
  if (!value.is_number()) {
    errors.add(field, std::string("must be a number, not ") + type_name(value));
    return std::nullopt;
  }
  const double number = value.get<double>();
  if (min_inclusive ? number < min : number <= min) {
    std::ostringstream message;
    message << value.dump() << " must be " << (min_inclusive ? "≥ " : "> ") << min;
    errors.add(field, message.str());
    return std::nullopt;
  }
  return number;
}

std::optional<std::string> get_string(const json& object, const char* field, LineErrors& errors) {
  const json& value = object.at(field);
  if (!value.is_string()) {
    errors.add(field, std::string("must be a string, not ") + type_name(value));
    return std::nullopt;
  }
  return value.get<std::string>();
}

std::string check_id(const std::string& id) {
  if (id.empty()) return "must not be empty";
  if (id.size() > kMaxIdLength)
    return "is " + std::to_string(id.size()) + " characters long; at most " +
           std::to_string(kMaxIdLength) + " are allowed";
  if (id[0] == '.') return "\"" + id + "\" must not start with '.'";
  for (const char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return "\"" + id +
             "\" has a character other than A-Z a-z 0-9 . _ - (it names the output files)";
  }
  return "";
}

// An existing file, relative to the manifest's folder unless absolute.
std::optional<std::string> get_existing_file(const json& object, const char* field,
                                             const fs::path& base_dir, LineErrors& errors) {
  const auto text = get_string(object, field, errors);
  if (!text) return std::nullopt;
  if (text->empty()) {
    errors.add(field, "must not be empty");
    return std::nullopt;
  }
  fs::path path(*text);
  if (path.is_relative()) path = base_dir / path;
  path = path.lexically_normal();
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) {
    errors.add(field, "\"" + *text + "\" does not exist (looked for " + path.string() + ")");
    return std::nullopt;
  }
  if (!fs::is_regular_file(status)) {
    errors.add(field, "\"" + *text + "\" is not a file (" + path.string() + ")");
    return std::nullopt;
  }
  return path.string();
}

// Checks one of width, height, frames against the model's size rules, with the other two set to
// sizes that fit, so that each field gets its own message.
void check_size(const char* field, int64_t value, bool from_default, const JobDefaults& defaults,
                LineErrors& errors) {
  const auto stride = model::sampling::vae_stride_for_channels(defaults.latent_channels);
  int64_t width = stride.width * 2, height = stride.height * 2, frames = 1;
  if (std::strcmp(field, "width") == 0) width = value;
  if (std::strcmp(field, "height") == 0) height = value;
  if (std::strcmp(field, "frames") == 0) frames = value;
  try {
    model::sampling::latent_shape(defaults.latent_channels, width, height, frames);
  } catch (const Error& e) {
    std::string message = e.what();
    const std::string repeated = std::string(field) + " ";
    if (message.rfind(repeated, 0) == 0) message.erase(0, repeated.size());
    if (from_default) message += " (the job's default)";
    errors.add(field, message);
  }
}

// Parses one line into an object, rejecting keys given twice (nlohmann keeps the last silently).
std::optional<json> parse_line(std::string_view line, LineErrors& errors) {
  std::set<std::string> seen;
  std::vector<std::string> repeated;
  const json::parser_callback_t note_keys = [&](int depth, json::parse_event_t event,
                                                json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second) repeated.push_back(key);
    }
    return true;
  };
  json object;
  try {
    object = json::parse(line.begin(), line.end(), note_keys);
  } catch (const json::exception& e) {
    std::string hint;
    if (!line.empty() && line[0] == '#') hint = " (comments are not allowed in JSON Lines)";
    errors.add("", std::string("invalid JSON") + hint + ": " + e.what());
    return std::nullopt;
  }
  if (!object.is_object()) {
    errors.add("", std::string("must be a JSON object, not ") + type_name(object));
    return std::nullopt;
  }
  for (const auto& key : repeated) errors.add(key, "given more than once");
  return object;
}

std::optional<ManifestItem> parse_item(const json& object, const fs::path& base_dir,
                                       const JobDefaults& defaults, LineErrors& errors) {
  const size_t errors_before = errors.count();
  ManifestItem item;
  for (const auto& [key, value] : object.items()) {
    if (!is_known_key(key)) errors.add(key, "unknown key (known: " + known_keys_list() + ")");
  }
  const auto has = [&](const char* field) { return object.contains(field); };

  if (!has("id")) {
    errors.add("id", "missing (every item needs a unique id)");
  } else if (auto id = get_string(object, "id", errors)) {
    if (const std::string problem = check_id(*id); !problem.empty())
      errors.add("id", problem);
    else
      item.id = *id;
  }
  if (!has("prompt")) {
    errors.add("prompt", "missing");
  } else if (auto prompt = get_string(object, "prompt", errors)) {
    if (prompt->empty())
      errors.add("prompt", "must not be empty");
    else
      item.prompt = *prompt;
  }
  item.negative_prompt = defaults.negative_prompt;
  if (has("negative_prompt")) {
    if (auto negative = get_string(object, "negative_prompt", errors))
      item.negative_prompt = *negative;
  }

  if (has("seed")) {
    const json& seed = object.at("seed");
    if (seed.is_number_unsigned())
      item.seed = seed.get<uint64_t>();
    else if (seed.is_number_integer())
      errors.add("seed", seed.dump() + " is negative; seeds are in [0, 2^64 − 1]");
    else if (seed.is_number_float())
      errors.add("seed", seed.dump() + " is not an integer in [0, 2^64 − 1]");
    else
      errors.add("seed", std::string("must be an integer, not ") + type_name(seed));
  } else {
    item.seed = default_seed(item.id);
    item.seed_from_id = true;
  }

  struct IntField {
    const char* name;
    int64_t max, fallback;
    int64_t* target;
    bool is_size;
  };
  const IntField int_fields[] = {
      {"width", kMaxSide, defaults.width, &item.width, true},
      {"height", kMaxSide, defaults.height, &item.height, true},
      {"frames", kMaxFrames, defaults.frames, &item.frames, true},
      {"steps", kMaxSteps, defaults.steps, &item.steps, false},
      {"fps", kMaxFps, defaults.fps, &item.fps, false},
  };
  // An image item's width and height are only the pixel budget of the size its image gives.
  const bool image_sized = has("image") && defaults.image != JobDefaults::ImageInput::None;
  for (const IntField& field : int_fields) {
    const bool given = has(field.name);
    std::optional<int64_t> value = field.fallback;
    if (given) value = get_positive_int(object, field.name, field.max, errors);
    if (!value) continue;
    *field.target = *value;
    const bool budget = image_sized && std::strcmp(field.name, "frames") != 0;
    if (field.is_size && !budget) check_size(field.name, *value, !given, defaults, errors);
  }

  std::string solver = defaults.solver;
  if (has("solver")) {
    if (auto given = get_string(object, "solver", errors))
      solver = *given;
    else
      solver.clear();
  }
  if (!solver.empty()) {
    try {
      item.solver = model::sampling::solver_name(model::sampling::parse_solver(solver));
    } catch (const Error& e) {
      errors.add("solver", std::string(e.what()) + (has("solver") ? "" : " (the job's default)"));
    }
  }

  item.shift = defaults.shift;
  const bool at_480p =
      (item.width == 832 && item.height == 480) || (item.width == 480 && item.height == 832);
  if (defaults.shift_480p && at_480p) item.shift = *defaults.shift_480p;
  if (has("shift")) {
    if (auto shift = get_number(object.at("shift"), "shift", 0.0, false, errors))
      item.shift = *shift;
  }

  item.guide_scale = defaults.guide_scale;
  item.guide_scale_high = defaults.two_experts ? defaults.guide_scale_high : std::nullopt;
  if (has("guide_scale")) {
    const json& guide = object.at("guide_scale");
    if (guide.is_array()) {
      if (guide.size() != 2) {
        errors.add("guide_scale", "an array must be [low, high], two numbers; got " +
                                      std::to_string(guide.size()));
      } else if (!defaults.two_experts) {
        errors.add("guide_scale",
                   "[low, high] is for two-expert (A14B) models; this model takes one number");
      } else {
        const auto low = get_number(guide[0], "guide_scale[0]", 0.0, true, errors);
        const auto high = get_number(guide[1], "guide_scale[1]", 0.0, true, errors);
        if (low && high) {
          item.guide_scale = *low;
          item.guide_scale_high = *high;
        }
      }
    } else if (guide.is_number()) {
      if (auto scale = get_number(guide, "guide_scale", 0.0, true, errors)) {
        item.guide_scale = *scale;
        item.guide_scale_high.reset();  // one number: both experts use it
      }
    } else {
      errors.add("guide_scale",
                 std::string("must be a number or [low, high], not ") + type_name(guide));
    }
  }

  if (has("image")) {
    if (defaults.image == JobDefaults::ImageInput::None) {
      errors.add("image", defaults.model_name +
                              " is a text-to-video model (16 input channels): it takes no image");
    } else if (auto path = get_existing_file(object, "image", base_dir, errors)) {
      item.image = *path;
    }
  } else if (defaults.image == JobDefaults::ImageInput::Required) {
    errors.add("image", "missing; " + defaults.model_name +
                            " is an image-to-video model (36 input channels): every item needs an "
                            "image to start from");
  }
  if (has("init_noise")) {
    if (auto path = get_existing_file(object, "init_noise", base_dir, errors))
      item.init_noise = *path;
  }
  if (errors.count() != errors_before) return std::nullopt;
  return item;
}

}  // namespace

JobDefaults job_defaults(const model::wan::GenerationDefaults& generation, int64_t latent_channels,
                         bool two_experts) {
  JobDefaults defaults;
  defaults.frames = generation.frames;
  defaults.steps = generation.steps;
  defaults.solver = generation.solver;
  defaults.shift = generation.shift;
  defaults.guide_scale = generation.guide_scale;
  defaults.guide_scale_high = generation.guide_scale_high;
  defaults.fps = generation.fps;
  defaults.latent_channels = latent_channels;
  defaults.two_experts = two_experts;
  return defaults;
}

JobDefaults job_defaults(const model::wan::GenerationDefaults& generation,
                         const model::wan::DitConfig& config, bool two_experts, bool lightning) {
  JobDefaults defaults = job_defaults(generation, config.out_dim, two_experts);
  if (!config.variant.empty()) defaults.model_name = config.variant;
  if (config.in_dim == 36) {
    defaults.image = JobDefaults::ImageInput::Required;
    // Wan2.1's I2V (one model); Wan2.2's A14B keeps its shift at every size.
    if (!two_experts && !lightning) defaults.shift_480p = 3.0;
  } else if (config.in_dim == 48) {
    defaults.image = JobDefaults::ImageInput::Optional;
    defaults.width = 1280;  // TI2V-5B's one size (generate.py: 1280*704 or 704*1280)
    defaults.height = 704;
  }
  return defaults;
}

uint64_t default_seed(std::string_view id) {
  uint64_t hash = 14695981039346656037ull;
  for (const char c : id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

namespace {
std::string manifest_error_message(const std::string& name,
                                   const std::vector<std::string>& errors) {
  std::string message = "invalid manifest " + name + " (" + std::to_string(errors.size()) +
                        (errors.size() == 1 ? " error):" : " errors):");
  const size_t shown = std::min(errors.size(), ManifestError::kMaxReportedErrors);
  for (size_t i = 0; i < shown; ++i) message += "\n  " + errors[i];
  if (errors.size() > shown)
    message += "\n  ... and " + std::to_string(errors.size() - shown) + " more";
  return message;
}
}  // namespace

ManifestError::ManifestError(const std::string& name, std::vector<std::string> errors)
    : Error(manifest_error_message(name, errors)), errors_(std::move(errors)) {}

std::vector<ManifestItem> parse_manifest(std::string_view text, const std::string& name,
                                         const fs::path& base_dir, const JobDefaults& defaults) {
  // A caller's mistake, not the manifest's: say it once.
  model::sampling::vae_stride_for_channels(defaults.latent_channels);

  std::vector<std::string> errors;
  std::vector<ManifestItem> items;
  std::unordered_map<std::string, int64_t> id_lines;
  int64_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;

    LineErrors line_errors(errors, name, line_number);
    const auto object = parse_line(line, line_errors);
    if (!object) continue;
    auto item = parse_item(*object, base_dir, defaults, line_errors);
    // Duplicates are checked on every valid-looking id, even when other fields of the line fail.
    if (object->contains("id") && (*object)["id"].is_string()) {
      const std::string id = (*object)["id"].get<std::string>();
      if (check_id(id).empty()) {
        const auto [it, inserted] = id_lines.emplace(id, line_number);
        if (!inserted) {
          line_errors.add("id",
                          "\"" + id + "\" is already used on line " + std::to_string(it->second));
          item.reset();
        }
      }
    }
    if (item && line_errors.count() == 0) {
      item->line = line_number;
      items.push_back(std::move(*item));
    }
  }
  if (errors.empty() && items.empty())
    errors.push_back(name + ": no items (the manifest is empty)");
  if (!errors.empty()) throw ManifestError(name, std::move(errors));
  return items;
}

std::vector<ManifestItem> read_manifest(const std::string& path, const JobDefaults& defaults) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw make_error("cannot open manifest ", path, ": ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw make_error("cannot read manifest ", path, ": ", std::strerror(errno));
  return parse_manifest(text.str(), path, fs::path(path).parent_path(), defaults);
}

}  // namespace wanbatch::jobs
