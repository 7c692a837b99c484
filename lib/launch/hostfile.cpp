#include "launch/hostfile.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.hpp"

namespace ds::launch {
namespace {

// More slots than any host has GPUs or useful CPU ranks: a value above this is a typo.
constexpr long k_max_slots = 65536;

// Python's str.strip() set, so a line means here what it means to DeepSpeed.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string where(const std::string& path, int line) { return "hostfile " + path + ":" + std::to_string(line); }

[[noreturn]] void bad_entry(const std::string& path, int line, std::string_view text) {
  throw HostfileError(where(path, line) + ": bad entry '" + std::string(text) +
                      "': write 'HOSTNAME slots=N' (e.g. 'worker-0 slots=4'), one host per line");
}

// Parses one stripped, non-comment line: HOST <ws> slots=DIGITS [<ws or #> anything].
HostfileEntry parse_line(std::string_view text, const std::string& path, int line) {
  size_t host_end = 0;
  while (host_end < text.size() && !is_space(text[host_end])) ++host_end;
  size_t pos = host_end;
  while (pos < text.size() && is_space(text[pos])) ++pos;
  if (pos == host_end) bad_entry(path, line, text);  // no whitespace after the host name
  constexpr std::string_view k_slots = "slots=";
  if (text.substr(pos, k_slots.size()) != k_slots) bad_entry(path, line, text);
  pos += k_slots.size();
  const size_t digits_begin = pos;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
  if (pos == digits_begin) bad_entry(path, line, text);
  if (pos < text.size() && !is_space(text[pos]) && text[pos] != '#') bad_entry(path, line, text);

  HostfileEntry entry;
  entry.host = std::string(text.substr(0, host_end));
  entry.line = line;
  const std::string_view digits = text.substr(digits_begin, pos - digits_begin);
  long slots = 0;
  for (char c : digits) {
    slots = slots * 10 + (c - '0');
    if (slots > k_max_slots) break;
  }
  if (slots > k_max_slots)
    throw HostfileError(where(path, line) + ": slots=" + std::string(digits) + " on host '" + entry.host +
                        "' is too large (at most " + std::to_string(k_max_slots) +
                        "): give the number of GPUs (or CPU ranks) of that host");
  if (slots == 0)
    throw HostfileError(where(path, line) + ": '" + std::string(text) + "' gives host '" + entry.host +
                        "' no slots: give slots=N with N >= 1, or remove the line");
  entry.slots = static_cast<int>(slots);
  return entry;
}

}  // namespace

Hostfile parse_hostfile(std::string_view text, const std::string& path) {
  Hostfile result;
  result.path = path;
  int line = 0;
  while (!text.empty() || line == 0) {
    ++line;
    const size_t newline = text.find('\n');
    std::string_view raw = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    const std::string_view stripped = strip(raw);
    if (stripped.empty() || stripped.front() == '#') continue;
    HostfileEntry entry = parse_line(stripped, path, line);
    for (const HostfileEntry& earlier : result.hosts) {
      if (earlier.host == entry.host)
        throw HostfileError(where(path, line) + ": host '" + entry.host + "' is listed again (first at line " +
                            std::to_string(earlier.line) + "): list each host once with all its slots");
    }
    result.hosts.push_back(std::move(entry));
  }
  if (result.hosts.empty())
    throw HostfileError("hostfile " + path +
                        " has no hosts (only blank lines or comments): add lines like 'worker-0 slots=4', "
                        "or leave out the hostfile to run on this node only");
  return result;
}

std::optional<Hostfile> read_hostfile(const std::string& path, HostfilePresence presence) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    const int err = errno;
    if (err == ENOENT && presence == HostfilePresence::optional) return std::nullopt;
    if (err == ENOENT)
      throw HostfileError("hostfile " + path +
                          " does not exist: fix the path given with -H/--hostfile, or leave it out to run on "
                          "this node only");
    throw HostfileError("hostfile " + path + " cannot be read: " + std::strerror(err));
  }
  if (S_ISDIR(info.st_mode))
    throw HostfileError("hostfile " + path + " is a directory, not a file: give the path of a file with lines like "
                        "'worker-0 slots=4'");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw HostfileError("hostfile " + path + " cannot be read: " + std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  return parse_hostfile(content.str(), path);
}

}  // namespace ds::launch
