#include "model/data_corpus.hpp"

#include <array>
#include <string_view>

#include "model/data_shuffle.hpp"
#include "base/atomic_file.hpp"

namespace ds::model {
namespace {

// ---- the world ---------------------------------------------------------------------------------
// Facts about each animal never change: the model can learn them from repetition.
struct Animal {
  std::string_view name, plural, color, home, food, sound;
};
constexpr std::array<Animal, 16> k_animals{{
    {"fox", "foxes", "red", "den", "berries", "barks"},
    {"owl", "owls", "brown", "old oak", "mice", "hoots"},
    {"cat", "cats", "grey", "warm kitchen", "fish", "purrs"},
    {"dog", "dogs", "black", "kennel", "bones", "barks"},
    {"horse", "horses", "white", "stable", "oats", "neighs"},
    {"cow", "cows", "spotted", "barn", "grass", "moos"},
    {"duck", "ducks", "yellow", "pond", "bread", "quacks"},
    {"frog", "frogs", "green", "reeds", "flies", "croaks"},
    {"bear", "bears", "dark brown", "cave", "honey", "growls"},
    {"rabbit", "rabbits", "soft grey", "burrow", "carrots", "sniffs"},
    {"goat", "goats", "brown and white", "hillside", "leaves", "bleats"},
    {"sheep", "sheep", "woolly white", "meadow", "clover", "bleats"},
    {"mouse", "mice", "tiny grey", "wall", "cheese", "squeaks"},
    {"hen", "hens", "golden", "coop", "corn", "clucks"},
    {"bee", "bees", "striped", "hive", "nectar", "hums"},
    {"wolf", "wolves", "silver", "forest", "meat", "howls"},
}};

struct Person {
  std::string_view name, pronoun, possessive;
};
constexpr std::array<Person, 16> k_people{{
    {"Anna", "she", "her"},  {"Ben", "he", "his"},    {"Clara", "she", "her"}, {"David", "he", "his"},
    {"Emma", "she", "her"},  {"Felix", "he", "his"},  {"Grace", "she", "her"}, {"Henry", "he", "his"},
    {"Iris", "she", "her"},  {"Jack", "he", "his"},   {"Lucy", "she", "her"},  {"Max", "he", "his"},
    {"Nora", "she", "her"},  {"Oscar", "he", "his"},  {"Rosa", "she", "her"},  {"Sam", "he", "his"},
}};

constexpr std::array<std::string_view, 12> k_places{"market", "river", "forest", "school", "garden", "library",
                                                    "harbor", "village", "bakery", "hill", "station", "field"};
constexpr std::array<std::string_view, 10> k_goods{"bread", "apples", "cheese", "milk", "fish",
                                                   "soup", "honey", "eggs", "carrots", "tea"};
constexpr std::array<std::string_view, 10> k_adjectives{"small", "old", "quiet", "happy", "tired",
                                                        "clever", "brave", "young", "lazy", "busy"};
constexpr std::array<std::string_view, 6> k_weather{"sunny", "cold", "windy", "rainy", "warm", "cloudy"};
constexpr std::array<std::string_view, 7> k_days{"Monday", "Tuesday", "Wednesday", "Thursday",
                                                 "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 13> k_numbers{"zero", "one", "two", "three", "four", "five", "six",
                                                     "seven", "eight", "nine", "ten", "eleven", "twelve"};
constexpr std::array<std::string_view, 8> k_walk_verbs{"walked", "ran", "went", "hurried",
                                                       "cycled", "wandered", "drove", "came back"};
constexpr std::array<std::string_view, 6> k_times{"In the morning", "At noon", "In the evening",
                                                  "After lunch", "Before dinner", "Later that day"};
constexpr std::array<std::string_view, 6> k_greetings{"Good morning", "Hello", "Good evening",
                                                      "Hi", "Good afternoon", "Welcome back"};

// ---- the generator -----------------------------------------------------------------------------
class Generator {
 public:
  explicit Generator(uint64_t seed) : m_state(mix64(seed)) {}

  std::string paragraph() {
    // Each paragraph has a protagonist, a companion, an animal and a day; its sentences refer to
    // them, so the paragraph hangs together and names recur at a distance.
    m_hero = pick(k_people.size());
    m_friend = (m_hero + 1 + pick(k_people.size() - 1)) % k_people.size();
    m_animal = pick(k_animals.size());
    m_day = pick(k_days.size());
    m_weather = pick(k_weather.size());
    std::string text;
    const size_t sentences = 3 + pick(5);
    for (size_t i = 0; i < sentences; ++i) {
      if (i > 0) text += ' ';
      text += sentence(i == 0);
    }
    return text;
  }

 private:
  uint64_t next() { return mix64(m_state++); }
  size_t pick(size_t n) { return static_cast<size_t>(next() % n); }
  template <typename A>
  std::string_view any(const A& items) { return items[pick(items.size())]; }

  const Person& hero() const { return k_people[m_hero]; }
  const Person& buddy() const { return k_people[m_friend]; }
  const Animal& animal() const { return k_animals[m_animal]; }

  static std::string capitalised(std::string_view text) {
    std::string out(text);
    if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
    return out;
  }

  std::string sentence(bool opening) {
    std::string s;
    const Person& h = hero();
    const Animal& a = animal();
    switch (opening ? pick(2) : pick(16)) {
      case 0:
        s = "On " + std::string(k_days[m_day]) + ", " + std::string(h.name) + " " + std::string(any(k_walk_verbs)) +
            " to the " + std::string(any(k_places)) + ".";
        break;
      case 1:
        s = "It was a " + std::string(k_weather[m_weather]) + " day, and " + std::string(h.name) + " was " +
            std::string(any(k_adjectives)) + ".";
        break;
      case 2: s = "The " + std::string(a.name) + " lives in the " + std::string(a.home) + "."; break;
      case 3: s = "The " + std::string(a.name) + " is " + std::string(a.color) + "."; break;
      case 4: s = "The " + std::string(a.name) + " eats " + std::string(a.food) + "."; break;
      case 5: s = "The " + std::string(a.name) + " " + std::string(a.sound) + "."; break;
      case 6:
        s = capitalised(h.name) + " saw a " + std::string(a.color) + " " + std::string(a.name) + " near the " +
            std::string(any(k_places)) + ".";
        break;
      case 7: {
        const size_t n = 2 + pick(11);
        s = capitalised(h.pronoun) + " bought " + std::string(k_numbers[n]) + " " + std::string(any(k_goods)) +
            " at the market.";
        break;
      }
      case 8: {
        const size_t x = 1 + pick(12), y = 1 + pick(12);
        s = std::to_string(x) + " and " + std::to_string(y) + " make " + std::to_string(x + y) + ".";
        break;
      }
      case 9:
        s = "\"" + std::string(any(k_greetings)) + ", " + std::string(buddy().name) + ",\" said " + std::string(h.name) +
            ". \"Is it " + std::string(k_weather[m_weather]) + " today?\" \"Yes,\" said " + std::string(buddy().name) +
            ", \"it is very " + std::string(k_weather[m_weather]) + ".\"";
        break;
      case 10:
        s = "After " + std::string(k_days[m_day]) + " comes " + std::string(k_days[(m_day + 1) % k_days.size()]) + ".";
        break;
      case 11: {
        const size_t n = 2 + pick(9);
        s = capitalised(h.name) + " counted the " + std::string(a.plural) + ":";
        for (size_t i = 1; i <= n; ++i) s += (i == 1 ? " " : ", ") + std::string(k_numbers[i]);
        s += ".";
        break;
      }
      case 12:
        s = std::string(any(k_times)) + ", " + std::string(h.name) + " and " + std::string(buddy().name) + " " +
            std::string(any(k_walk_verbs)) + " to the " + std::string(any(k_places)) + " together.";
        break;
      case 13:
        s = "If it is " + std::string(k_weather[m_weather]) + ", the " + std::string(a.name) + " stays in the " +
            std::string(a.home) + ".";
        break;
      case 14:
        s = capitalised(h.pronoun) + " gave " + std::string(h.possessive) + " " + std::string(a.name) + " some " +
            std::string(a.food) + ", and the " + std::string(a.name) + " " + std::string(a.sound) + ".";
        break;
      default:
        s = "The " + std::string(any(k_adjectives)) + " " + std::string(a.name) + " and the " +
            std::string(k_animals[pick(k_animals.size())].name) + " played by the " + std::string(any(k_places)) + ".";
        break;
    }
    return s;
  }

  uint64_t m_state;
  size_t m_hero = 0, m_friend = 1, m_animal = 0, m_day = 0, m_weather = 0;
};

}  // namespace

std::string default_corpus_text(size_t bytes, uint64_t seed) {
  Generator generator(seed);
  std::string text;
  text.reserve(bytes + 1024);
  while (text.size() < bytes) {
    text += generator.paragraph();
    text += "\n\n";
  }
  text.resize(bytes);
  return text;
}

std::vector<uint16_t> default_corpus_tokens(size_t bytes, uint64_t seed) {
  const std::string text = default_corpus_text(bytes, seed);
  std::vector<uint16_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  return tokens;
}

TokenDataset default_corpus_dataset(size_t bytes, uint64_t seed) {
  const std::string name = "default corpus (" + std::to_string(bytes) + " bytes, seed " + std::to_string(seed) + ")";
  std::vector<TokenShard> shards;
  shards.push_back(TokenShard::from_text(name, default_corpus_text(bytes, seed)));
  return TokenDataset(std::move(shards), name);
}

void write_default_corpus(const std::string& path, size_t bytes, uint64_t seed) {
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".bin") == 0) {
    const std::vector<uint16_t> tokens = default_corpus_tokens(bytes, seed);
    write_token_shard(path, std::span<const uint16_t>(tokens));
  } else {
    write_file_atomic(path, default_corpus_text(bytes, seed));
  }
}

}  // namespace ds::model
