#include "runtime/plugin_loader.hpp"

#include "runtime/cron.hpp"

#include <boost/dll/shared_library.hpp>  // with std::filesystem: BOOST_DLL_USE_STD_FS, set in CMake

#include <elf.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <system_error>

namespace taskhost {
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw plugin_error("cannot read the file: " + std::string(std::strerror(errno)));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw plugin_error("cannot hash the file");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

/// Names of the defined dynamic symbols of a 64-bit little-endian ELF image that start with
/// `prefix`. Reads section headers only; runs nothing.
std::vector<std::string> exported_symbols(const std::string& img, std::string_view prefix) {
  auto fits = [&](uint64_t off, uint64_t len) { return off <= img.size() && len <= img.size() - off; };
  if (!fits(0, sizeof(Elf64_Ehdr))) throw plugin_error("not an ELF shared library (file too short)");
  Elf64_Ehdr eh;
  std::memcpy(&eh, img.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    throw plugin_error("not a 64-bit little-endian ELF library");
  if (eh.e_type != ET_DYN) throw plugin_error("an ELF file, but not a shared library");
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || !fits(eh.e_shoff, uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr)))
    throw plugin_error("damaged ELF file (section headers out of range)");
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  std::memcpy(sh.data(), img.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
  std::vector<std::string> out;
  for (const auto& s : sh) {
    if (s.sh_type != SHT_DYNSYM || s.sh_link >= sh.size()) continue;
    const auto& strtab = sh[s.sh_link];
    if (!fits(s.sh_offset, s.sh_size) || !fits(strtab.sh_offset, strtab.sh_size))
      throw plugin_error("damaged ELF file (symbol table out of range)");
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, img.data() + s.sh_offset + off, sizeof sym);
      if (sym.st_shndx == SHN_UNDEF || sym.st_name >= strtab.sh_size) continue;
      const char* name = img.data() + strtab.sh_offset + sym.st_name;
      size_t max = strtab.sh_size - sym.st_name;
      std::string_view n(name, strnlen(name, max));
      if (n.substr(0, prefix.size()) == prefix) out.emplace_back(n);
    }
  }
  return out;
}

/// Copies the file to <cache>/<sha256>.so unless that copy exists. Copy + rename: a reader never
/// sees a half-written library.
fs::path cache_copy(const fs::path& file, const std::string& image, const fs::path& cache_dir) {
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) throw plugin_error("cannot create the plugin cache folder " + cache_dir.string() + ": " + ec.message());
  fs::path target = cache_dir / (sha256_hex(image) + "-" + file.filename().string());
  if (fs::exists(target, ec)) return target;
  fs::path tmp = target;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(image.data(), std::streamsize(image.size()));
    if (!out) throw plugin_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, target, ec);
  if (ec) throw plugin_error("cannot move the plugin copy into " + cache_dir.string() + ": " + ec.message());
  return target;
}

std::string describe(const char* s) { return s ? std::string(s) : std::string(); }

}  // namespace

bool valid_task_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  if (!std::isalnum(static_cast<unsigned char>(id[0]))) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

loaded_plugin load_plugin(const fs::path& file, const fs::path& cache_dir) {
  const std::string image = read_file(file);
  if (image.size() < 4 || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0)
    throw plugin_error("not an ELF shared library (no ELF header)");

  const std::string wanted = "taskhost_plugin_v" + std::to_string(TASKHOST_ABI_MAJOR);
  auto entries = exported_symbols(image, TASKHOST_ENTRY_SYMBOL_PREFIX);
  if (std::find(entries.begin(), entries.end(), wanted) == entries.end()) {
    if (!entries.empty())
      throw plugin_error("built for another plugin ABI: it exports '" + entries.front() + "', this taskhost needs '" +
                         wanted + "' (ABI major " + std::to_string(TASKHOST_ABI_MAJOR) + "); rebuild it against this taskhost's SDK");
    throw plugin_error("no entry symbol '" + wanted + "': not a taskhost plugin (missing TASKHOST_PLUGIN(...)?)");
  }

  loaded_plugin p;
  p.file = file;
  p.loaded_from = cache_copy(file, image, cache_dir);

  auto lib = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code ec;
  lib->load(p.loaded_from, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !lib->is_loaded()) {
    const char* why = dlerror();
    throw plugin_error("dlopen failed: " + (why ? std::string(why) : ec.message()));
  }
  th_plugin_entry_fn entry = nullptr;
  if (lib->has(wanted)) entry = &lib->get<const th_plugin_descriptor*()>(wanted);
  if (entry == nullptr) throw plugin_error("entry symbol '" + wanted + "' could not be resolved");

  const th_plugin_descriptor* d = entry();
  if (d == nullptr) throw plugin_error("the entry function returned no descriptor");
  constexpr size_t min_desc = offsetof(th_plugin_descriptor, task_descriptor_size) + sizeof(uint32_t);
  if (d->struct_size < min_desc)
    throw plugin_error("plugin descriptor too small (" + std::to_string(d->struct_size) + " bytes, need at least " +
                       std::to_string(min_desc) + ")");
  if (d->abi_major != TASKHOST_ABI_MAJOR)
    throw plugin_error("descriptor says ABI major " + std::to_string(d->abi_major) + ", this taskhost supports " +
                       std::to_string(TASKHOST_ABI_MAJOR));
  if (d->abi_minor > TASKHOST_ABI_MINOR)
    throw plugin_error("built for ABI " + std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) +
                       ", newer than this taskhost's " + std::to_string(TASKHOST_ABI_MAJOR) + "." +
                       std::to_string(TASKHOST_ABI_MINOR) + "; upgrade taskhost or rebuild the plugin with an older SDK");
  if (d->name == nullptr || *d->name == '\0') throw plugin_error("the plugin has no name");
  constexpr size_t min_task = offsetof(th_task_descriptor, destroy) + sizeof(void*);
  if (d->task_count > 0 && (d->tasks == nullptr || d->task_descriptor_size < min_task))
    throw plugin_error("task descriptors too small (" + std::to_string(d->task_descriptor_size) + " bytes, need at least " +
                       std::to_string(min_task) + ")");
  if (d->task_count > 100000) throw plugin_error("implausible task count " + std::to_string(d->task_count));

  p.name = d->name;
  p.version = describe(d->version);
  p.build_info = describe(d->build_info);
  p.abi_major = d->abi_major;
  p.abi_minor = d->abi_minor;
  std::shared_ptr<void> keep_alive = lib;
  std::set<std::string> ids;
  for (uint32_t i = 0; i < d->task_count; ++i) {
    auto* t = reinterpret_cast<const th_task_descriptor*>(reinterpret_cast<const char*>(d->tasks) +
                                                          size_t(i) * d->task_descriptor_size);
    if (t->struct_size < min_task) throw plugin_error("task #" + std::to_string(i) + ": descriptor too small");
    std::string id = describe(t->id);
    if (!valid_task_id(id))
      throw plugin_error("task #" + std::to_string(i) + ": invalid task id '" + id +
                         "' (1-128 characters of letters, digits, '-', '_', '.')");
    if (!ids.insert(id).second) throw plugin_error("task id '" + id + "' is declared twice in this plugin");
    if (!t->start || !t->step || !t->destroy) throw plugin_error("task '" + id + "': missing start/step/destroy");
    loaded_task lt;
    lt.id = id;
    lt.description = describe(t->description);
    lt.plugin_name = p.name;
    lt.descriptor = t;
    lt.library = keep_alive;
    constexpr size_t v11 = offsetof(th_task_descriptor, max_duration_ms) + sizeof(uint64_t);
    if (t->struct_size >= v11 && d->task_descriptor_size >= v11) {
      const th_retry_options& r = t->retry;
      auto bad = [&](const std::string& what) { return plugin_error("task '" + id + "': " + what); };
      if (r.max_attempts < 0 || r.max_attempts > 250) throw bad("retry.max_attempts must be 1..250");
      if (r.factor != 0.0 && !(r.factor >= 1.0 && r.factor <= 1000.0)) throw bad("retry.factor must be 1..1000");
      if (r.min_timeout_ms < -1 || r.max_timeout_ms < -1) throw bad("retry timeouts must not be negative");
      if (r.min_timeout_ms >= 0 && r.max_timeout_ms >= 0 && r.max_timeout_ms < r.min_timeout_ms)
        throw bad("retry.max_timeout is below retry.min_timeout");
      if (t->max_duration_ms != 0 && t->max_duration_ms < 5000) throw bad("max_duration must be at least 5 s");
      lt.retry = r;
      lt.max_duration_ms = t->max_duration_ms;
    }
    constexpr size_t v15 = offsetof(th_task_descriptor, queue_concurrency_limit) + sizeof(int32_t);
    if (d->abi_minor >= 5 && t->struct_size >= v15 && d->task_descriptor_size >= v15) {
      auto bad = [&](const std::string& what) { return plugin_error("task '" + id + "': " + what); };
      const int32_t limit = t->queue_concurrency_limit;  // 0 = not set
      if (limit == -1)
        throw bad("queue.concurrency_limit 0 would never start a run (leave it unset for no limit, or pause the queue through the API)");
      if (limit < 0 || limit > 100000)
        throw bad("queue.concurrency_limit " + std::to_string(limit) + " is out of range (1..100000)");
      // Bounded read: a name without a NUL within 129 bytes is too long either way.
      std::string name = t->queue_name ? std::string(t->queue_name, strnlen(t->queue_name, 129)) : std::string();
      if (name.size() > 128) throw bad("queue.name is longer than 128 characters");
      if (!std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                   c == '.';
          }))
        throw bad("queue.name '" + name + "' has characters other than letters, digits, '-', '_', '.'");
      lt.queue_name = std::move(name);
      lt.queue_concurrency_limit = limit == 0 ? -1 : limit;
    }
    // 1.6: `scheduled` sits in 1.5's tail padding, so a 1.5 descriptor's size may cover it; only
    // abi_minor says whether it was written.
    constexpr size_t v16 = offsetof(th_task_descriptor, schedule_timezone) + sizeof(const char*);
    if (d->abi_minor >= 6 && t->struct_size >= v16 && d->task_descriptor_size >= v16) {
      auto bad = [&](const std::string& what) { return plugin_error("task '" + id + "': " + what); };
      if (t->scheduled != 0 && t->scheduled != 1)
        throw bad("scheduled must be 0 or 1, not " + std::to_string(t->scheduled));
      // Bounded reads: a string without a NUL within its limit + 1 bytes is too long either way.
      std::string cron = t->schedule_cron ? std::string(t->schedule_cron, strnlen(t->schedule_cron, 257)) : std::string();
      std::string zone =
          t->schedule_timezone ? std::string(t->schedule_timezone, strnlen(t->schedule_timezone, 65)) : std::string();
      if (!t->scheduled && !cron.empty())
        throw bad("has a cron schedule (\"" + cron.substr(0, 256) + "\") but is not a scheduled task");
      if (!t->scheduled && !zone.empty())
        throw bad("has a schedule time zone (\"" + zone.substr(0, 64) + "\") but is not a scheduled task");
      if (cron.size() > 256) throw bad("the cron expression is longer than 256 characters");
      if (zone.size() > 64) throw bad("the schedule time zone is longer than 64 characters");
      if (!zone.empty() && cron.empty()) throw bad("has a schedule time zone (\"" + zone + "\") but no cron expression");
      if (!cron.empty()) {
        try {
          cron_expression::parse(cron);
        } catch (const std::invalid_argument& e) {  // cron_error: what() names the field
          throw bad("invalid cron \"" + cron + "\": " + e.what());
        }
      }
      if (!zone.empty()) {
        try {
          time_zone::locate(zone);
        } catch (const std::invalid_argument& e) {  // what(): "unknown time zone 'Mars/Olympus'"
          throw bad(e.what());
        }
      }
      lt.scheduled = t->scheduled == 1;
      lt.schedule_cron = std::move(cron);
      lt.schedule_timezone = std::move(zone);
    }
    p.tasks.push_back(std::move(lt));
  }
  constexpr size_t v12 = offsetof(th_plugin_descriptor, hook_descriptor_size) + sizeof(uint32_t);
  if (d->abi_minor >= 2 && d->struct_size >= v12 && d->hook_count > 0) {
    constexpr size_t min_hook = offsetof(th_hook_descriptor, call) + sizeof(void*);
    if (d->hooks == nullptr || d->hook_descriptor_size < min_hook) throw plugin_error("hook descriptors too small");
    if (d->hook_count > 100000) throw plugin_error("implausible hook count " + std::to_string(d->hook_count));
    for (uint32_t i = 0; i < d->hook_count; ++i) {
      auto* h = reinterpret_cast<const th_hook_descriptor*>(reinterpret_cast<const char*>(d->hooks) +
                                                            size_t(i) * d->hook_descriptor_size);
      std::string where = "hook #" + std::to_string(i) + " ('" + describe(h->name) + "')";
      if (h->struct_size < min_hook || h->call == nullptr) throw plugin_error(where + ": descriptor too small or no function");
      if (h->kind < 0 || h->kind >= TH_HOOK_KIND_COUNT) throw plugin_error(where + ": unknown hook kind " + std::to_string(h->kind));
      std::string task = describe(h->task_id);
      if (!task.empty() && !ids.count(task))
        throw plugin_error(where + ": belongs to task '" + task + "', which this plugin does not declare");
      p.hooks.push_back(loaded_hook{static_cast<th_hook_kind>(h->kind), describe(h->name), task, p.name, h, keep_alive});
    }
  }
  constexpr size_t v12m = offsetof(th_plugin_descriptor, middleware_descriptor_size) + sizeof(uint32_t);
  if (d->abi_minor >= 2 && d->struct_size >= v12m && d->middleware_count > 0) {
    constexpr size_t min_mw = offsetof(th_middleware_descriptor, destroy) + sizeof(void*);
    if (d->middleware == nullptr || d->middleware_descriptor_size < min_mw) throw plugin_error("middleware descriptors too small");
    if (d->middleware_count > 10000) throw plugin_error("implausible middleware count");
    std::set<std::string> names;
    for (uint32_t i = 0; i < d->middleware_count; ++i) {
      auto* m = reinterpret_cast<const th_middleware_descriptor*>(reinterpret_cast<const char*>(d->middleware) +
                                                                  size_t(i) * d->middleware_descriptor_size);
      std::string name = describe(m->name);
      if (m->struct_size < min_mw || !m->start || !m->step || !m->destroy)
        throw plugin_error("middleware #" + std::to_string(i) + ": descriptor too small or functions missing");
      if (!valid_task_id(name)) throw plugin_error("middleware #" + std::to_string(i) + ": invalid name '" + name + "'");
      if (!names.insert(name).second) throw plugin_error("middleware '" + name + "' is declared twice in this plugin");
      p.middleware.push_back(loaded_middleware{name, p.name, m, keep_alive});
    }
  }
  return p;
}

std::vector<std::string> unknown_middleware(const config::deployment& cfg, const plugin_load_report& report) {
  std::vector<std::string> out;
  auto check = [&](const std::vector<config::middleware_ref>& refs) {
    for (const auto& m : refs)
      if (!report.middleware.count(m.name))
        out.push_back(m.position.str() + ": middleware '" + m.name + "' is not provided by any loaded plugin");
  };
  check(cfg.middleware);
  for (const auto& [id, t] : cfg.tasks) check(t.middleware);
  return out;
}

std::vector<std::string> unknown_queues(const config::deployment& cfg, const plugin_load_report& report) {
  std::vector<std::string> out;
  for (const auto& [id, t] : cfg.tasks) {
    if (t.queue.empty()) continue;
    bool declared = std::any_of(cfg.queues.begin(), cfg.queues.end(), [&](const auto& q) { return q.name == t.queue; }) ||
                    std::any_of(report.tasks.begin(), report.tasks.end(), [&](const auto& lt) { return lt.second.queue_name == t.queue; });
    if (!declared)
      out.push_back(t.queue_position.str() + ": tasks." + id + ".queue names queue '" + t.queue +
                    "', which neither `queues:` nor any plugin declares");
  }
  return out;
}

std::string_view hook_kind_name(int kind) {
  static constexpr std::string_view names[] = {"init", "on_start", "on_start_attempt", "on_success", "on_failure",
                                               "on_complete", "cleanup", "catch_error", "on_wait", "on_resume", "on_cancel"};
  return kind >= 0 && kind < TH_HOOK_KIND_COUNT ? names[kind] : "unknown";
}

plugin_load_report load_plugins(const fs::path& dir, const fs::path& cache_dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw plugin_error("plugins_dir " + dir.string() + " is not a folder");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".so" && (e.is_regular_file() || e.is_symlink())) files.push_back(e.path());
  if (ec) throw plugin_error("cannot list plugins_dir " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());

  plugin_load_report report;
  std::map<std::string, fs::path> owner;  // task id -> file that declared it
  std::map<std::string, fs::path> names;  // plugin name -> file
  for (const auto& f : files) {
    try {
      loaded_plugin p = load_plugin(f, cache_dir);
      if (auto n = names.find(p.name); n != names.end())
        throw plugin_error("plugin name '" + p.name + "' is already used by " + n->second.string());
      for (const auto& t : p.tasks)
        if (auto o = owner.find(t.id); o != owner.end())
          throw plugin_error("task id '" + t.id + "' is already declared by " + o->second.string());
      for (const auto& m : p.middleware)
        if (auto o = report.middleware.find(m.name); o != report.middleware.end())
          throw plugin_error("middleware '" + m.name + "' is already declared by plugin '" + o->second.plugin_name + "'");
      names.emplace(p.name, f);
      for (const auto& t : p.tasks) {
        owner.emplace(t.id, f);
        report.tasks.emplace(t.id, t);
      }
      report.hooks.insert(report.hooks.end(), p.hooks.begin(), p.hooks.end());
      for (const auto& m : p.middleware) report.middleware.emplace(m.name, m);
      report.plugins.push_back(std::move(p));
    } catch (const std::exception& e) {
      report.refused.push_back({f, e.what()});
    }
  }
  return report;
}

}  // namespace taskhost
