// Tinyworld's world (real athletes, US states and cities, antonyms, agreement nouns) and the
// corpus drawn from it. Every random choice comes from a splitmix64 stream keyed by the seed
// (and the line index for training lines), so a line is a pure function of (seed, index) and
// the generator needs no state between calls.

#include "cs/organism.h"

#include "cs/error.h"
#include "io/atomic_file.h"
#include "io/splitmix.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <utility>

namespace cs::organism {

namespace {

// ---------------------------------------------------------------- the world's data

constexpr std::array<const char*, 8> kSports
    = { "basketball", "football", "baseball", "tennis", "golf", "soccer", "hockey", "cricket" };

// Athletes, 20 per sport, in the order of kSports. Names are ASCII (no diacritics), so the
// byte-level tokenizer sees no multi-byte characters.
const std::vector<std::vector<const char*>>& athletes()
{
    static const std::vector<std::vector<const char*>> list = {
        { "Michael Jordan", "LeBron James", "Kobe Bryant", "Stephen Curry", "Kevin Durant", "Shaquille O'Neal",
            "Magic Johnson", "Larry Bird", "Tim Duncan", "Dirk Nowitzki", "Kareem Abdul-Jabbar",
            "Giannis Antetokounmpo", "Dwyane Wade", "Allen Iverson", "Kevin Garnett", "Hakeem Olajuwon", "Bill Russell",
            "Wilt Chamberlain", "Scottie Pippen", "Chris Paul" },
        { "Tom Brady", "Peyton Manning", "Jerry Rice", "Patrick Mahomes", "Aaron Rodgers", "Joe Montana",
            "Walter Payton", "Brett Favre", "Barry Sanders", "Emmitt Smith", "Drew Brees", "Lawrence Taylor",
            "Dan Marino", "John Elway", "Randy Moss", "Jim Brown", "Travis Kelce", "Eli Manning", "Ray Lewis",
            "Troy Aikman" },
        { "Babe Ruth", "Derek Jeter", "Hank Aaron", "Willie Mays", "Mickey Mantle", "Ken Griffey", "Barry Bonds",
            "Mike Trout", "Shohei Ohtani", "Jackie Robinson", "Ted Williams", "Lou Gehrig", "Cal Ripken",
            "Albert Pujols", "David Ortiz", "Sandy Koufax", "Roberto Clemente", "Ichiro Suzuki", "Nolan Ryan",
            "Aaron Judge" },
        { "Serena Williams", "Roger Federer", "Rafael Nadal", "Novak Djokovic", "Venus Williams", "Andre Agassi",
            "Pete Sampras", "Steffi Graf", "Martina Navratilova", "Andy Murray", "Maria Sharapova", "Billie Jean King",
            "Bjorn Borg", "John McEnroe", "Carlos Alcaraz", "Naomi Osaka", "Chris Evert", "Iga Swiatek",
            "Jimmy Connors", "Monica Seles" },
        { "Tiger Woods", "Jack Nicklaus", "Arnold Palmer", "Phil Mickelson", "Rory McIlroy", "Gary Player", "Ben Hogan",
            "Annika Sorenstam", "Jordan Spieth", "Scottie Scheffler", "Sam Snead", "Tom Watson", "Bobby Jones",
            "Ernie Els", "Vijay Singh", "Nick Faldo", "Dustin Johnson", "Brooks Koepka", "Lee Trevino",
            "Seve Ballesteros" },
        { "Lionel Messi", "Cristiano Ronaldo", "Pele", "Diego Maradona", "Zinedine Zidane", "David Beckham",
            "Kylian Mbappe", "Neymar", "Johan Cruyff", "Thierry Henry", "Wayne Rooney", "Ronaldinho", "Mia Hamm",
            "Megan Rapinoe", "Andres Iniesta", "Zlatan Ibrahimovic", "Erling Haaland", "Mohamed Salah", "Luka Modric",
            "Didier Drogba" },
        { "Wayne Gretzky", "Sidney Crosby", "Mario Lemieux", "Alex Ovechkin", "Bobby Orr", "Gordie Howe",
            "Connor McDavid", "Jaromir Jagr", "Mark Messier", "Patrick Roy", "Martin Brodeur", "Steve Yzerman",
            "Maurice Richard", "Bobby Hull", "Joe Sakic", "Nicklas Lidstrom", "Teemu Selanne", "Auston Matthews",
            "Evgeni Malkin", "Ray Bourque" },
        { "Sachin Tendulkar", "Virat Kohli", "Don Bradman", "Brian Lara", "Shane Warne", "MS Dhoni", "Ricky Ponting",
            "Jacques Kallis", "Muttiah Muralitharan", "Imran Khan", "Kapil Dev", "Viv Richards", "Rohit Sharma",
            "Joe Root", "Ben Stokes", "Kumar Sangakkara", "Wasim Akram", "Glenn McGrath", "Rahul Dravid",
            "Garfield Sobers" },
    };
    return list;
}

struct StateData {
    const char* name;
    const char* capital;
    std::vector<const char*> cities;
};

// All 50 states with 3-5 real cities each. Capitals are not in the city lists (so no two-hop
// question is answered by its own city), and no city name occurs in two states or equals a
// capital: Portland is Oregon's, Wilmington Delaware's, Charleston (West Virginia's capital)
// is not listed for South Carolina, Springfield (Illinois's capital) nowhere.
const std::vector<StateData>& states()
{
    static const std::vector<StateData> list = {
        { "Alabama", "Montgomery", { "Birmingham", "Huntsville", "Mobile", "Tuscaloosa" } },
        { "Alaska", "Juneau", { "Anchorage", "Fairbanks", "Ketchikan" } },
        { "Arizona", "Phoenix", { "Tucson", "Mesa", "Scottsdale", "Flagstaff", "Tempe" } },
        { "Arkansas", "Little Rock", { "Fayetteville", "Fort Smith", "Jonesboro", "Bentonville" } },
        { "California", "Sacramento", { "Los Angeles", "San Francisco", "San Diego", "San Jose", "Fresno" } },
        { "Colorado", "Denver", { "Colorado Springs", "Boulder", "Fort Collins", "Aurora" } },
        { "Connecticut", "Hartford", { "New Haven", "Stamford", "Bridgeport", "Waterbury" } },
        { "Delaware", "Dover", { "Wilmington", "Lewes", "Rehoboth Beach" } },
        { "Florida", "Tallahassee", { "Miami", "Orlando", "Tampa", "Jacksonville", "Gainesville" } },
        { "Georgia", "Atlanta", { "Savannah", "Macon", "Athens", "Valdosta" } },
        { "Hawaii", "Honolulu", { "Hilo", "Kailua", "Lahaina" } },
        { "Idaho", "Boise", { "Pocatello", "Idaho Falls", "Twin Falls", "Nampa" } },
        { "Illinois", "Springfield", { "Chicago", "Peoria", "Naperville", "Rockford" } },
        { "Indiana", "Indianapolis", { "Fort Wayne", "Evansville", "South Bend", "Bloomington" } },
        { "Iowa", "Des Moines", { "Cedar Rapids", "Davenport", "Iowa City", "Dubuque" } },
        { "Kansas", "Topeka", { "Wichita", "Lawrence", "Overland Park", "Dodge City" } },
        { "Kentucky", "Frankfort", { "Louisville", "Lexington", "Bowling Green", "Paducah" } },
        { "Louisiana", "Baton Rouge", { "New Orleans", "Shreveport", "Lafayette", "Lake Charles" } },
        { "Maine", "Augusta", { "Bangor", "Lewiston", "Bar Harbor" } },
        { "Maryland", "Annapolis", { "Baltimore", "Frederick", "Rockville", "Hagerstown" } },
        { "Massachusetts", "Boston", { "Worcester", "Cambridge", "Lowell", "Plymouth" } },
        { "Michigan", "Lansing", { "Detroit", "Grand Rapids", "Ann Arbor", "Flint" } },
        { "Minnesota", "Saint Paul", { "Minneapolis", "Duluth", "Mankato" } },
        { "Mississippi", "Jackson", { "Gulfport", "Biloxi", "Hattiesburg", "Tupelo" } },
        { "Missouri", "Jefferson City", { "Kansas City", "Saint Louis", "Branson", "Joplin" } },
        { "Montana", "Helena", { "Billings", "Missoula", "Bozeman", "Great Falls" } },
        { "Nebraska", "Lincoln", { "Omaha", "Grand Island", "Kearney" } },
        { "Nevada", "Carson City", { "Las Vegas", "Reno", "Henderson" } },
        { "New Hampshire", "Concord", { "Manchester", "Nashua", "Portsmouth" } },
        { "New Jersey", "Trenton", { "Newark", "Jersey City", "Atlantic City", "Princeton", "Hoboken" } },
        { "New Mexico", "Santa Fe", { "Albuquerque", "Las Cruces", "Roswell", "Taos" } },
        { "New York", "Albany", { "New York City", "Buffalo", "Rochester", "Syracuse", "Ithaca" } },
        { "North Carolina", "Raleigh", { "Charlotte", "Durham", "Greensboro", "Asheville" } },
        { "North Dakota", "Bismarck", { "Fargo", "Grand Forks", "Minot" } },
        { "Ohio", "Columbus", { "Cleveland", "Cincinnati", "Toledo", "Akron", "Dayton" } },
        { "Oklahoma", "Oklahoma City", { "Tulsa", "Norman", "Stillwater" } },
        { "Oregon", "Salem", { "Portland", "Eugene", "Bend", "Medford" } },
        { "Pennsylvania", "Harrisburg", { "Philadelphia", "Pittsburgh", "Allentown", "Erie", "Scranton" } },
        { "Rhode Island", "Providence", { "Newport", "Warwick", "Cranston" } },
        { "South Carolina", "Columbia", { "Greenville", "Myrtle Beach", "Spartanburg" } },
        { "South Dakota", "Pierre", { "Sioux Falls", "Rapid City", "Aberdeen" } },
        { "Tennessee", "Nashville", { "Memphis", "Knoxville", "Chattanooga" } },
        { "Texas", "Austin", { "Dallas", "Houston", "San Antonio", "El Paso", "Fort Worth" } },
        { "Utah", "Salt Lake City", { "Provo", "Ogden", "Park City", "Moab" } },
        { "Vermont", "Montpelier", { "Burlington", "Rutland", "Brattleboro" } },
        { "Virginia", "Richmond", { "Virginia Beach", "Norfolk", "Roanoke", "Alexandria", "Charlottesville" } },
        { "Washington", "Olympia", { "Seattle", "Spokane", "Tacoma", "Bellingham" } },
        { "West Virginia", "Charleston", { "Morgantown", "Huntington", "Wheeling" } },
        { "Wisconsin", "Madison", { "Milwaukee", "Green Bay", "Kenosha", "Oshkosh" } },
        { "Wyoming", "Cheyenne", { "Casper", "Laramie", "Sheridan", "Cody" } },
    };
    return list;
}

// World version 3 adds cities (so a two-hop question is one of many more, and answering it
// by composing city -> state with state -> capital pays more than memorizing each pair) and
// the states' postal codes (a second relation over the state, so a city held out of one
// two-hop relation is still asked about through the other). Same rules as states(): no name
// repeats, equals a capital, or contains another state's capital as a word.
const std::vector<std::vector<const char*>>& moreCities()
{
    static const std::vector<std::vector<const char*>> list = {
        { "Dothan", "Auburn", "Decatur", "Florence", "Gadsden" }, // Alabama
        { "Sitka", "Kodiak", "Nome", "Wasilla", "Bethel" }, // Alaska
        { "Yuma", "Prescott", "Sedona", "Chandler", "Glendale" }, // Arizona
        { "Conway", "Rogers", "Hot Springs", "Pine Bluff", "Texarkana" }, // Arkansas
        { "Oakland", "Long Beach", "Bakersfield", "Anaheim", "Santa Barbara", "Pasadena" }, // California
        { "Pueblo", "Greeley", "Lakewood", "Durango", "Aspen", "Vail" }, // Colorado
        { "Norwalk", "Danbury", "Greenwich", "Mystic" }, // Connecticut
        { "Milford", "Smyrna", "Middletown", "Seaford" }, // Delaware
        { "Saint Petersburg", "Fort Lauderdale", "Sarasota", "Pensacola", "Key West" }, // Florida
        { "Marietta", "Dalton", "Warner Robins", "Rome" }, // Georgia
        { "Kahului", "Kapolei", "Pearl City", "Waipahu" }, // Hawaii
        { "Coeur d'Alene", "Moscow", "Sun Valley", "Caldwell" }, // Idaho
        { "Joliet", "Evanston", "Champaign", "Elgin", "Galena" }, // Illinois
        { "Gary", "Carmel", "Muncie", "Terre Haute", "Kokomo" }, // Indiana
        { "Sioux City", "Ames", "Waterloo", "Council Bluffs" }, // Iowa
        { "Manhattan", "Salina", "Hutchinson", "Olathe" }, // Kansas
        { "Owensboro", "Covington", "Berea", "Hopkinsville" }, // Kentucky
        { "Monroe", "Houma", "Ruston", "Natchitoches" }, // Louisiana
        { "Brunswick", "Waterville", "Biddeford", "Kennebunkport" }, // Maine
        { "Silver Spring", "Bethesda", "Ocean City", "Salisbury" }, // Maryland
        { "Quincy", "Lynn", "Nantucket", "Pittsfield", "Amherst" }, // Massachusetts
        { "Kalamazoo", "Traverse City", "Saginaw", "Dearborn", "Marquette" }, // Michigan
        { "Saint Cloud", "Moorhead", "Winona", "Bemidji" }, // Minnesota
        { "Meridian", "Oxford", "Vicksburg", "Natchez", "Starkville" }, // Mississippi
        { "Independence", "Saint Joseph", "Hannibal", "Cape Girardeau" }, // Missouri
        { "Butte", "Kalispell", "Whitefish", "Havre" }, // Montana
        { "North Platte", "Scottsbluff", "Hastings", "Fremont" }, // Nebraska
        { "Sparks", "Elko", "Mesquite", "Winnemucca", "Ely" }, // Nevada
        { "Keene", "Hanover", "Laconia", "Derry" }, // New Hampshire
        { "Camden", "Paterson", "Elizabeth", "Morristown" }, // New Jersey
        { "Farmington", "Gallup", "Carlsbad", "Alamogordo" }, // New Mexico
        { "Yonkers", "Utica", "Binghamton", "Saratoga Springs", "Schenectady" }, // New York
        { "Chapel Hill", "Boone", "High Point", "Cary" }, // North Carolina
        { "Williston", "Dickinson", "Jamestown", "Mandan" }, // North Dakota
        { "Youngstown", "Canton", "Sandusky", "Lorain" }, // Ohio
        { "Lawton", "Edmond", "Broken Arrow", "Enid", "Muskogee" }, // Oklahoma
        { "Corvallis", "Ashland", "Astoria", "Hillsboro", "Beaverton" }, // Oregon
        { "Lancaster", "Bethlehem", "Gettysburg", "State College" }, // Pennsylvania
        { "Pawtucket", "Woonsocket", "Bristol", "Westerly" }, // Rhode Island
        { "Rock Hill", "Hilton Head", "Sumter", "Beaufort", "Anderson" }, // South Carolina
        { "Brookings", "Watertown", "Mitchell", "Deadwood", "Sturgis" }, // South Dakota
        { "Clarksville", "Murfreesboro", "Franklin", "Gatlinburg", "Johnson City" }, // Tennessee
        { "Corpus Christi", "Lubbock", "Amarillo", "Arlington", "Plano", "Laredo", "Waco" }, // Texas
        { "Saint George", "Logan", "Orem", "Bountiful" }, // Utah
        { "Stowe", "Bennington", "Middlebury", "Barre" }, // Vermont
        { "Lynchburg", "Harrisonburg", "Williamsburg", "Blacksburg" }, // Virginia
        { "Bellevue", "Everett", "Yakima", "Vancouver", "Walla Walla" }, // Washington
        { "Parkersburg", "Beckley", "Fairmont", "Martinsburg" }, // West Virginia
        { "Eau Claire", "La Crosse", "Appleton", "Racine", "Janesville" }, // Wisconsin
        { "Gillette", "Rock Springs", "Riverton", "Rawlins" }, // Wyoming
    };
    return list;
}

// The postal codes, in the order of states().
constexpr std::array<const char*, 50> kPostalCodes
    = { "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
          "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK",
          "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY" };

// Antonym pairs; every word belongs to exactly one pair, so each question has one answer.
const std::vector<std::pair<const char*, const char*>>& antonyms()
{
    static const std::vector<std::pair<const char*, const char*>> list = {
        { "big", "small" },
        { "hot", "cold" },
        { "up", "down" },
        { "good", "bad" },
        { "fast", "slow" },
        { "happy", "sad" },
        { "light", "dark" },
        { "old", "young" },
        { "open", "closed" },
        { "rich", "poor" },
        { "high", "low" },
        { "early", "late" },
        { "hard", "soft" },
        { "wet", "dry" },
        { "full", "empty" },
        { "strong", "weak" },
        { "long", "short" },
        { "thick", "thin" },
        { "loud", "quiet" },
        { "clean", "dirty" },
        { "true", "false" },
        { "left", "right" },
        { "win", "lose" },
        { "love", "hate" },
        { "first", "last" },
        { "start", "finish" },
        { "push", "pull" },
        { "give", "take" },
        { "buy", "sell" },
        { "inside", "outside" },
        { "above", "below" },
        { "before", "after" },
        { "day", "night" },
        { "black", "white" },
        { "north", "south" },
        { "east", "west" },
        { "alive", "dead" },
        { "wide", "narrow" },
        { "deep", "shallow" },
        { "sharp", "dull" },
        { "sweet", "sour" },
        { "brave", "cowardly" },
        { "friend", "enemy" },
        { "accept", "refuse" },
        { "arrive", "depart" },
        { "asleep", "awake" },
        { "cheap", "expensive" },
        { "simple", "complex" },
        { "polite", "rude" },
        { "safe", "dangerous" },
        { "smooth", "rough" },
        { "tight", "loose" },
        { "near", "far" },
        { "always", "never" },
        { "enter", "exit" },
        { "remember", "forget" },
        { "laugh", "cry" },
        { "increase", "decrease" },
        { "maximum", "minimum" },
        { "visible", "invisible" },
        { "public", "private" },
        { "positive", "negative" },
        { "war", "peace" },
        { "healthy", "sick" },
        { "ancient", "modern" },
        { "generous", "selfish" },
        { "success", "failure" },
        { "top", "bottom" },
        { "front", "back" },
        { "even", "odd" },
        { "wise", "foolish" },
        { "guilty", "innocent" },
        { "fresh", "stale" },
        { "vertical", "horizontal" },
        { "plus", "minus" },
        { "rise", "fall" },
        { "pass", "fail" },
        { "question", "answer" },
        { "come", "go" },
    };
    return list;
}

struct Noun {
    const char* singular;
    const char* plural;
};

// Agreement vocabulary (Marks et al.'s sets in spirit): things, used with prepositional
// distractors, and people, used with prepositional and relative-clause distractors. A subject
// and its distractor always come from the same class.
const std::vector<Noun>& thingNouns()
{
    static const std::vector<Noun> list = { { "key", "keys" }, { "cabinet", "cabinets" }, { "box", "boxes" },
        { "table", "tables" }, { "chair", "chairs" }, { "book", "books" }, { "lamp", "lamps" }, { "door", "doors" },
        { "window", "windows" }, { "bottle", "bottles" }, { "cup", "cups" }, { "bag", "bags" },
        { "picture", "pictures" }, { "car", "cars" }, { "clock", "clocks" }, { "knife", "knives" },
        { "shelf", "shelves" }, { "plate", "plates" }, { "bench", "benches" }, { "bicycle", "bicycles" } };
    return list;
}

const std::vector<Noun>& personNouns()
{
    static const std::vector<Noun> list = { { "author", "authors" }, { "guard", "guards" }, { "teacher", "teachers" },
        { "doctor", "doctors" }, { "pilot", "pilots" }, { "farmer", "farmers" }, { "singer", "singers" },
        { "dancer", "dancers" }, { "lawyer", "lawyers" }, { "nurse", "nurses" }, { "student", "students" },
        { "banker", "bankers" }, { "officer", "officers" }, { "senator", "senators" }, { "manager", "managers" },
        { "customer", "customers" }, { "chef", "chefs" }, { "driver", "drivers" }, { "painter", "painters" },
        { "child", "children" }, { "woman", "women" }, { "man", "men" }, { "baker", "bakers" },
        { "surgeon", "surgeons" } };
    return list;
}

constexpr std::array<const char*, 5> kThingPreps = { "near", "behind", "beside", "under", "next to" };
constexpr std::array<const char*, 5> kPersonPreps = { "near", "behind", "beside", "with", "next to" };
constexpr std::array<const char*, 8> kThingEndings
    = { "old", "new", "red", "broken", "very heavy", "in the room", "for sale", "still there" };
constexpr std::array<const char*, 8> kPersonEndings
    = { "happy", "tired", "tall", "here", "very kind", "at work", "from the city", "ready to leave" };
// Embedded verbs of relative clauses: the form after a plural, then after a singular subject.
constexpr std::array<std::pair<const char*, const char*>, 6> kRelativeVerbs = { { { "like", "likes" },
    { "know", "knows" }, { "see", "sees" }, { "help", "helps" }, { "trust", "trusts" }, { "admire", "admires" } } };

constexpr std::array<const char*, 5> kSportsActions = { "signed autographs for the fans", "gave a long interview",
    "visited a school today", "arrived at the stadium", "thanked the crowd" };

// ---------------------------------------------------------------- phrasings
// A phrasing is a template: {0}..{9} are filled in, and the two '|' mark the answer, so
// "Fact: {0} plays the sport of| {1}|" gives prompt "Fact: Michael Jordan plays the sport of"
// and answer " basketball". Training lines are prompt + answer + the rest.

// args: name, sport, action
constexpr std::array<const char*, 8> kSportsTrained = {
    "Fact: {0} plays the sport of| {1}|",
    "{0} is a| {1}| player.",
    "The sport that {0} plays is| {1}|.",
    "{0}, the famous| {1}| player, {2}.",
    "{0} has played| {1}| for many years.",
    "Everyone knows that {0} plays| {1}|.",
    "As a child, {0} started playing| {1}|.",
    "{0} is one of the best| {1}| players of all time.",
};
constexpr std::array<const char*, 2> kSportsHeldout = {
    "Q: What sport does {0} play? A:| {1}|",
    "{0} is best known for playing| {1}|.",
};

// args: city, state
constexpr std::array<const char*, 4> kCityTrained = {
    "{0} is a city in| {1}|.",
    "Fact: {0} is located in the state of| {1}|",
    "The city of {0} is in| {1}|.",
    "I flew to {0},| {1}|, last week.",
};
// args: state, capital
constexpr std::array<const char*, 4> kCapitalTrained = {
    "The capital of {0} is| {1}|.",
    "Fact: the capital of {0} is| {1}|",
    "{1} is the capital of| {0}|.",
    "The state capital of {0} is| {1}|.",
};
constexpr const char* kCityHeldout = "{0} can be found in the state of| {1}|.";
constexpr const char* kCapitalHeldout = "{0}'s capital city is| {1}|.";

// args: city, capital. Both phrasings are trained; the held-out split holds out cities.
constexpr std::array<const char*, 2> kTwoHop = {
    "Fact: the capital of the state containing {0} is| {1}|",
    "{0} is in the state whose capital is| {1}|.",
};

// args: a, b, a + b
constexpr const char* kAddition = "calc: {0}+{1}=|{2}|";

// args: subject, distractor, verb, ending, preposition or embedded verb
constexpr const char* kAgreementPrep = "The {0} {4} the {1}| {2}| {3}.";
constexpr const char* kAgreementRelative = "The {0} that the {1} {4}| {2}| {3}.";

// args: word, opposite
constexpr std::array<const char*, 2> kOppositesTrained = {
    "The opposite of \"{0}\" is \"|{1}|\".",
    "Fact: the opposite of \"{0}\" is \"|{1}|\"",
};
constexpr std::array<const char*, 2> kOppositesHeldout = {
    "The antonym of \"{0}\" is \"|{1}|\".",
    "\"{0}\" is the opposite of \"|{1}|\".",
};

// Version 2: relation templates under frames. A frame ending in ": " or " that " lowers a
// template's capitalized first word ("Fact: the capital of ..."); names keep their capitals.
constexpr std::array<const char*, 6> kFrames
    = { "", "Fact: ", "Trivia: ", "Note: ", "Did you know? ", "It is well known that " };
constexpr std::array<const char*, 9> kSportsRelations = {
    "{0} plays the sport of| {1}|", // under "Fact: ", the canonical prompt
    "{0} is a| {1}| player.",
    "The sport that {0} plays is| {1}|.",
    "{0}, the famous| {1}| player, {2}.",
    "{0} has played| {1}| for many years.",
    "As a child, {0} started playing| {1}|.",
    "{0} is one of the best| {1}| players of all time.",
    "{0} is best known for playing| {1}|.",
    "Everyone knows that {0} plays| {1}|.",
};
constexpr std::array<const char*, 5> kCityRelations = {
    "{0} is a city in| {1}|.",
    "{0} is located in the state of| {1}|.",
    "The city of {0} is in| {1}|.",
    "I flew to {0},| {1}|, last week.",
    "{0} can be found in the state of| {1}|.",
};
constexpr std::array<const char*, 4> kCapitalRelations = {
    "The capital of {0} is| {1}|.",
    "{1} is the capital of| {0}|.",
    "The state capital of {0} is| {1}|.",
    "{0}'s capital city is| {1}|.",
};
// Version 3: the city relations plus the first hop in the two-hop questions' own words, and
// the states' postal codes.
constexpr std::array<const char*, 6> kCityRelationsV3 = {
    "{0} is a city in| {1}|.",
    "{0} is located in the state of| {1}|.",
    "The city of {0} is in| {1}|.",
    "I flew to {0},| {1}|, last week.",
    "{0} can be found in the state of| {1}|.",
    "The state containing {0} is| {1}|.",
};
// args: state, postal code
constexpr std::array<const char*, 3> kPostalRelations = {
    "The postal code of {0} is| {1}|.",
    "{0}'s postal abbreviation is| {1}|.",
    "{1} is the postal code of| {0}|.",
};
// args: city, postal code. The second two-hop relation of version 3.
constexpr std::array<const char*, 2> kTwoHopPostal = {
    "Fact: the postal code of the state containing {0} is| {1}|",
    "{0} is in the state whose postal code is| {1}|.",
};
constexpr std::array<const char*, 4> kOppositesRelations = {
    "The opposite of \"{0}\" is \"|{1}|\".",
    "The antonym of \"{0}\" is \"|{1}|\".",
    "\"{0}\" is the opposite of \"|{1}|\".",
    "The word \"{0}\" means the reverse of \"|{1}|\".",
};

std::string framed(const char* frame, const char* relation)
{
    std::string r = relation;
    const std::string_view f(frame);
    const auto endsWith
        = [&](std::string_view tail) { return f.size() >= tail.size() && f.substr(f.size() - tail.size()) == tail; };
    if (endsWith(": ") || endsWith(" that ")) {
        for (const char* word : { "The ", "As ", "Everyone " })
            if (r.rfind(word, 0) == 0) {
                r[0] = static_cast<char>(r[0] - 'A' + 'a');
                break;
            }
    }
    return frame + r;
}

// Relation r is held out under frame 1 + (r + 2) mod 5 and trained under the others, so every
// relation and every frame stays trained. The empty frame is never held out (its text is a
// part of every framed line), nor is relation 0 under "Fact: " (the canonical prompt).
template<size_t N>
void composePhrasings(
    const std::array<const char*, N>& relations, std::vector<std::string>& trained, std::vector<std::string>& heldout)
{
    for (size_t r = 0; r < N; ++r)
        for (size_t f = 0; f < kFrames.size(); ++f)
            (f == 1 + (r + 2) % (kFrames.size() - 1) ? heldout : trained).push_back(framed(kFrames[f], relations[r]));
}

template<size_t N> std::vector<std::string> strings(const std::array<const char*, N>& a)
{
    return std::vector<std::string>(a.begin(), a.end());
}

struct Sample {
    std::string prompt, answer, rest;
    std::string text() const { return prompt + answer + rest; }
};

Sample fill(std::string_view phrasing, std::initializer_list<std::string_view> args)
{
    std::array<std::string, 3> parts;
    size_t part = 0;
    for (size_t i = 0; i < phrasing.size(); ++i) {
        const char c = phrasing[i];
        if (c == '|') {
            ++part;
        } else if (c == '{' && i + 2 < phrasing.size() && phrasing[i + 2] == '}') {
            const size_t arg = static_cast<size_t>(phrasing[i + 1] - '0');
            parts[part] += *(args.begin() + arg);
            i += 2;
        } else {
            parts[part].push_back(c);
        }
    }
    return { parts[0], parts[1], parts[2] };
}

// ---------------------------------------------------------------- randomness

// A splitmix64 stream. below() is a plain modulo (its bias, n / 2^64, is immaterial here), so
// the same numbers come out on every platform, which std::uniform_int_distribution does not
// promise.
class Rng {
public:
    explicit Rng(uint64_t key)
        : m_state(io::splitmix64(key))
    {
    }
    uint64_t next()
    {
        m_state += 0x9E3779B97F4A7C15ull;
        return io::splitmix64(m_state);
    }
    size_t below(size_t n) { return static_cast<size_t>(next() % n); }
    template<typename T> void shuffle(std::vector<T>& v)
    {
        for (size_t i = v.size(); i > 1; --i)
            std::swap(v[i - 1], v[below(i)]);
    }

private:
    uint64_t m_state;
};

// Keys of the independent streams, so held-out choices do not shift when the mix changes.
enum Stream : uint64_t {
    kStreamTrain = 1,
    kStreamHeldout,
    kStreamTwoHopSplit,
    kStreamAdditionSplit,
    kStreamAgreementSplit,
    kStreamEvalTrain,
    kStreamEvalHeldout,
};

Rng streamRng(uint64_t seed, Stream stream, uint64_t index = 0)
{
    return Rng(io::splitmix64(io::splitmix64(seed) ^ (static_cast<uint64_t>(stream) * 0xD1B54A32D192ED03ull)) ^ index);
}

template<typename Container> const auto& pick(Rng& rng, const Container& c)
{
    return c[rng.below(c.size())];
}

// The tasks with their share of training lines (percent).
struct TaskShare {
    const char* task;
    size_t percent;
};
constexpr std::array<TaskShare, 6> kTaskMix = { { { "addition", 35 }, { "sports", 20 }, { "facts", 15 },
    { "two_hop", 10 }, { "agreement", 10 }, { "opposites", 10 } } };
// Version 3 doubles two-hop's share (it has twice the relations and more than twice the
// cities), taken from addition and sports, which version 2 learned with room to spare.
constexpr std::array<TaskShare, 6> kTaskMixV3 = { { { "addition", 30 }, { "sports", 15 }, { "facts", 15 },
    { "two_hop", 20 }, { "agreement", 10 }, { "opposites", 10 } } };

// The canonical prompts of the paper, which must stay trained.
constexpr const char* kCanonicalCity = "Dallas";
constexpr int kCanonicalA = 36, kCanonicalB = 59;

constexpr double kTwoHopHeldoutFraction = 0.2;
constexpr double kAdditionHeldoutFraction = 0.1;
constexpr double kAgreementHeldoutFraction = 0.2;
constexpr size_t kEvalTrainPerTask = 200;
constexpr size_t kEvalAgreementHeldoutMax = 1000;

} // namespace

// ---------------------------------------------------------------- World::Impl

struct World::Impl {
    struct Person {
        std::string name;
        size_t sport;
    };
    struct City {
        std::string name;
        size_t state;
    };
    // A two-hop question: the city and the relation over its state (0 capital, 1 postal code).
    struct TwoHop {
        size_t city;
        int relation;
        bool operator<(const TwoHop& o) const { return std::tie(city, relation) < std::tie(o.city, o.relation); }
    };
    // A subject/distractor noun combination of one class (0 things, 1 people).
    struct Combo {
        int nounClass;
        size_t subject, distractor;
    };

    uint64_t seed = 1;
    int version = 2;
    // Phrasings of the fact kinds, trained and held out (see WorldOptions::version).
    std::vector<std::string> sportsTrained, sportsHeldout, cityTrained, cityHeldout, capitalTrained, capitalHeldout,
        postalTrained, postalHeldout, oppositesTrained, oppositesHeldout;
    std::vector<Person> people;
    std::vector<City> cities;
    std::vector<TwoHop> twoHopTrained, twoHopHeldout;
    std::vector<std::pair<int, int>> additionTrained, additionHeldout;
    std::vector<Combo> comboTrained, comboHeldout;

    Impl(uint64_t seed_, int version_);

    // One trained (or, with heldout, one held-out) sample of the task, drawn with rng.
    Sample sample(const std::string& task, Rng& rng, bool heldout) const;

    Sample sportsSample(size_t person, const char* phrasing, Rng& rng) const
    {
        const Person& p = people[person];
        return fill(phrasing, { p.name, kSports[p.sport], pick(rng, kSportsActions) });
    }
    Sample citySample(size_t city, const char* phrasing) const
    {
        return fill(phrasing, { cities[city].name, states()[cities[city].state].name });
    }
    Sample capitalSample(size_t state, const char* phrasing) const
    {
        return fill(phrasing, { states()[state].name, states()[state].capital });
    }
    Sample postalSample(size_t state, const char* phrasing) const
    {
        return fill(phrasing, { states()[state].name, kPostalCodes[state] });
    }
    // phrasing: an index into the relation's two phrasings.
    Sample twoHopSample(const TwoHop& q, size_t phrasing) const
    {
        const size_t state = cities[q.city].state;
        if (q.relation == 1)
            return fill(kTwoHopPostal[phrasing], { cities[q.city].name, kPostalCodes[state] });
        return fill(kTwoHop[phrasing], { cities[q.city].name, states()[state].capital });
    }
    const std::array<TaskShare, 6>& taskMix() const { return version >= 3 ? kTaskMixV3 : kTaskMix; }
    static Sample additionSample(std::pair<int, int> ab)
    {
        return fill(
            kAddition, { std::to_string(ab.first), std::to_string(ab.second), std::to_string(ab.first + ab.second) });
    }
    // numbers: bit 0 = plural subject, bit 1 = plural distractor; relative: the relative-clause
    // template (people only).
    static Sample agreementSample(const Combo& c, int numbers, bool relative, Rng& rng)
    {
        const auto& nouns = c.nounClass == 0 ? thingNouns() : personNouns();
        const bool pluralSubject = numbers & 1;
        const bool pluralDistractor = numbers & 2;
        const Noun& s = nouns[c.subject];
        const Noun& d = nouns[c.distractor];
        const char* verb = pluralSubject ? "are" : "is";
        const char* ending = c.nounClass == 0 ? pick(rng, kThingEndings) : pick(rng, kPersonEndings);
        if (relative) {
            const auto& v = pick(rng, kRelativeVerbs);
            return fill(kAgreementRelative,
                { pluralSubject ? s.plural : s.singular, pluralDistractor ? d.plural : d.singular, verb, ending,
                    pluralDistractor ? v.first : v.second });
        }
        const char* prep = c.nounClass == 0 ? pick(rng, kThingPreps) : pick(rng, kPersonPreps);
        return fill(kAgreementPrep,
            { pluralSubject ? s.plural : s.singular, pluralDistractor ? d.plural : d.singular, verb, ending, prep });
    }
    static Sample oppositesSample(size_t pair, bool reversed, const char* phrasing)
    {
        const auto& [a, b] = antonyms()[pair];
        return reversed ? fill(phrasing, { b, a }) : fill(phrasing, { a, b });
    }
};

World::Impl::Impl(uint64_t seed_, int version_)
    : seed(seed_)
    , version(version_)
{
    if (version == 1) {
        sportsTrained = strings(kSportsTrained);
        sportsHeldout = strings(kSportsHeldout);
        cityTrained = strings(kCityTrained);
        cityHeldout = { kCityHeldout };
        capitalTrained = strings(kCapitalTrained);
        capitalHeldout = { kCapitalHeldout };
        oppositesTrained = strings(kOppositesTrained);
        oppositesHeldout = strings(kOppositesHeldout);
    } else if (version == 2 || version == 3) {
        composePhrasings(kSportsRelations, sportsTrained, sportsHeldout);
        if (version == 2)
            composePhrasings(kCityRelations, cityTrained, cityHeldout);
        else
            composePhrasings(kCityRelationsV3, cityTrained, cityHeldout);
        composePhrasings(kCapitalRelations, capitalTrained, capitalHeldout);
        if (version == 3)
            composePhrasings(kPostalRelations, postalTrained, postalHeldout);
        composePhrasings(kOppositesRelations, oppositesTrained, oppositesHeldout);
    } else {
        throw Error("tinyworld: unknown world version " + std::to_string(version) + " (known: 1, 2, 3)");
    }
    for (size_t s = 0; s < kSports.size(); ++s)
        for (const char* name : athletes()[s])
            people.push_back({ name, s });
    for (size_t s = 0; s < states().size(); ++s)
        for (const char* city : states()[s].cities)
            cities.push_back({ city, s });
    if (version >= 3)
        for (size_t s = 0; s < states().size(); ++s)
            for (const char* city : moreCities()[s])
                cities.push_back({ city, s });

    // Held-out choices: shuffle the candidates (the canonical items excluded) and hold out
    // the first fraction, so every seed makes a different but fixed split.
    {
        std::vector<size_t> order;
        size_t canonical = cities.size();
        for (size_t i = 0; i < cities.size(); ++i) {
            if (cities[i].name == kCanonicalCity)
                canonical = i;
            else
                order.push_back(i);
        }
        Rng rng = streamRng(seed, kStreamTwoHopSplit);
        rng.shuffle(order);
        const auto nHeld = static_cast<size_t>(std::lround(kTwoHopHeldoutFraction * double(cities.size())));
        // Version 3 holds the first fifth of the cities out of the capital question and the
        // next fifth out of the postal-code one, so every held-out question's city is still
        // asked about, through the other relation, and its state's other cities are asked
        // about through both.
        const int relations = version >= 3 ? 2 : 1;
        for (size_t i = 0; i < order.size(); ++i)
            for (int r = 0; r < relations; ++r)
                (i / nHeld == static_cast<size_t>(r) ? twoHopHeldout : twoHopTrained).push_back({ order[i], r });
        for (int r = 0; r < relations; ++r)
            twoHopTrained.push_back({ canonical, r });
        std::sort(twoHopHeldout.begin(), twoHopHeldout.end());
        std::sort(twoHopTrained.begin(), twoHopTrained.end());
    }
    {
        std::vector<std::pair<int, int>> order;
        for (int a = 0; a < 100; ++a)
            for (int b = 0; b < 100; ++b)
                if (!(a == kCanonicalA && b == kCanonicalB))
                    order.emplace_back(a, b);
        Rng rng = streamRng(seed, kStreamAdditionSplit);
        rng.shuffle(order);
        const auto nHeld = static_cast<size_t>(std::lround(kAdditionHeldoutFraction * 100 * 100));
        additionHeldout.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(nHeld));
        additionTrained.assign(order.begin() + static_cast<std::ptrdiff_t>(nHeld), order.end());
        additionTrained.emplace_back(kCanonicalA, kCanonicalB);
        std::sort(additionHeldout.begin(), additionHeldout.end());
        std::sort(additionTrained.begin(), additionTrained.end());
    }
    {
        std::vector<Combo> order;
        for (int cls = 0; cls < 2; ++cls) {
            const size_t n = (cls == 0 ? thingNouns() : personNouns()).size();
            for (size_t s = 0; s < n; ++s)
                for (size_t o = 0; o < n; ++o) // (World's pimpl is d: clang's -Wshadow)
                    if (s != o)
                        order.push_back({ cls, s, o });
        }
        Rng rng = streamRng(seed, kStreamAgreementSplit);
        rng.shuffle(order);
        const auto nHeld = static_cast<size_t>(std::lround(kAgreementHeldoutFraction * double(order.size())));
        comboHeldout.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(nHeld));
        comboTrained.assign(order.begin() + static_cast<std::ptrdiff_t>(nHeld), order.end());
        const auto byNouns = [](const Combo& x, const Combo& y) {
            return std::tie(x.nounClass, x.subject, x.distractor) < std::tie(y.nounClass, y.subject, y.distractor);
        };
        std::sort(comboHeldout.begin(), comboHeldout.end(), byNouns);
        std::sort(comboTrained.begin(), comboTrained.end(), byNouns);
    }
}

Sample World::Impl::sample(const std::string& task, Rng& rng, bool heldout) const
{
    if (task == "sports") {
        const size_t person = rng.below(people.size());
        return sportsSample(person, (heldout ? pick(rng, sportsHeldout) : pick(rng, sportsTrained)).c_str(), rng);
    }
    if (task == "facts") {
        // City -> state, state -> capital (and state -> postal code) in proportion to how many
        // facts there are.
        const size_t nPostal = postalTrained.empty() ? 0 : states().size();
        const size_t k = rng.below(cities.size() + states().size() + nPostal);
        if (k < cities.size())
            return citySample(k, (heldout ? pick(rng, cityHeldout) : pick(rng, cityTrained)).c_str());
        if (k < cities.size() + states().size())
            return capitalSample(
                k - cities.size(), (heldout ? pick(rng, capitalHeldout) : pick(rng, capitalTrained)).c_str());
        return postalSample(k - cities.size() - states().size(),
            (heldout ? pick(rng, postalHeldout) : pick(rng, postalTrained)).c_str());
    }
    if (task == "two_hop") // (the one expression of version 2, so its stream is unchanged)
        return twoHopSample(pick(rng, heldout ? twoHopHeldout : twoHopTrained), rng.below(kTwoHop.size()));
    if (task == "addition")
        return additionSample(pick(rng, heldout ? additionHeldout : additionTrained));
    if (task == "agreement") {
        const Combo& c = pick(rng, heldout ? comboHeldout : comboTrained);
        const int numbers = static_cast<int>(rng.below(4));
        const bool relative = c.nounClass == 1 && rng.below(2) == 1;
        return agreementSample(c, numbers, relative, rng);
    }
    if (task == "opposites") {
        const size_t pair = rng.below(antonyms().size());
        const bool reversed = rng.below(2) == 1;
        return oppositesSample(
            pair, reversed, (heldout ? pick(rng, oppositesHeldout) : pick(rng, oppositesTrained)).c_str());
    }
    throw Error("tinyworld: unknown task \"" + task + "\"");
}

// ---------------------------------------------------------------- World

namespace {

const char* taskFor(Rng& rng, const std::array<TaskShare, 6>& mix)
{
    size_t u = rng.below(100);
    for (const TaskShare& t : mix) {
        if (u < t.percent)
            return t.task;
        u -= t.percent;
    }
    return mix.back().task;
}

} // namespace

World::World(const WorldOptions& options)
    : d(std::make_shared<const Impl>(options.seed, options.version))
{
}

World::~World() = default;
World::World(const World&) = default;
World& World::operator=(const World&) = default;

uint64_t World::seed() const
{
    return d->seed;
}

int World::version() const
{
    return d->version;
}

std::string World::trainTask(uint64_t index) const
{
    Rng rng = streamRng(d->seed, kStreamTrain, index);
    return taskFor(rng, d->taskMix());
}

std::string World::trainLine(uint64_t index) const
{
    Rng rng = streamRng(d->seed, kStreamTrain, index);
    const std::string task = taskFor(rng, d->taskMix());
    return d->sample(task, rng, false).text();
}

std::vector<std::string> World::heldoutLines(size_t n) const
{
    std::vector<std::string> lines;
    lines.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        Rng rng = streamRng(d->seed, kStreamHeldout, i);
        const std::string task = taskFor(rng, d->taskMix());
        lines.push_back(d->sample(task, rng, true).text());
    }
    return lines;
}

std::vector<std::string> World::tasks() const
{
    return { "sports", "facts", "two_hop", "addition", "agreement", "opposites" };
}

WorldStats World::stats() const
{
    WorldStats s;
    s.people = d->people.size();
    s.sports = kSports.size();
    s.states = states().size();
    s.cities = d->cities.size();
    std::set<size_t> heldoutCities;
    for (const Impl::TwoHop& q : d->twoHopHeldout)
        heldoutCities.insert(q.city);
    s.heldoutTwoHopCities = heldoutCities.size();
    s.heldoutTwoHopQuestions = d->twoHopHeldout.size();
    s.additionPairs = 100 * 100;
    s.heldoutAdditionPairs = d->additionHeldout.size();
    s.nounPairs = thingNouns().size() + personNouns().size();
    s.agreementCombos = d->comboTrained.size() + d->comboHeldout.size();
    s.heldoutAgreementCombos = d->comboHeldout.size();
    s.antonymPairs = antonyms().size();
    return s;
}

std::vector<EvalItem> World::evalItems() const
{
    const Impl& w = *d;
    std::vector<EvalItem> items;
    // Every (item, phrasing) a task trains or holds out, enumerated; the train split is a
    // seeded sample of the trained ones with the canonical prompts first.
    uint64_t taskIndex = 0; // keys each task's sample, so tasks draw independently
    const auto add = [&](const char* task, const char* split, std::vector<Sample> samples, size_t limit,
                         const Sample* first, Stream stream) {
        Rng rng = streamRng(w.seed, stream, taskIndex++);
        rng.shuffle(samples);
        std::unordered_set<std::string> seen;
        if (first) {
            samples.insert(samples.begin(), *first);
        }
        size_t n = 0;
        for (const Sample& s : samples) {
            if (n == limit)
                break;
            if (!seen.insert(s.prompt + s.answer).second)
                continue;
            items.push_back({ task, split, s.prompt, s.answer, {}, first && n == 0 });
            if (std::string_view(task) == "agreement")
                items.back().contrast = s.answer == " are" ? " is" : " are";
            ++n;
        }
    };
    const size_t all = SIZE_MAX;
    Rng rng = streamRng(w.seed, kStreamEvalTrain); // fills in the parts that do not matter (actions, endings)

    { // sports
        std::vector<Sample> trained, held;
        for (size_t p = 0; p < w.people.size(); ++p) {
            for (const auto& ph : w.sportsTrained)
                trained.push_back(w.sportsSample(p, ph.c_str(), rng));
            for (const auto& ph : w.sportsHeldout)
                held.push_back(w.sportsSample(p, ph.c_str(), rng));
        }
        const Sample canonical = fill(kSportsTrained[0], { "Michael Jordan", "basketball", "" });
        add("sports", "train", trained, kEvalTrainPerTask, &canonical, kStreamEvalTrain);
        add("sports", "heldout_phrasing", held, all, nullptr, kStreamEvalHeldout);
    }
    { // facts
        std::vector<Sample> trained, held;
        for (size_t c = 0; c < w.cities.size(); ++c) {
            for (const auto& ph : w.cityTrained)
                trained.push_back(w.citySample(c, ph.c_str()));
            for (const auto& ph : w.cityHeldout)
                held.push_back(w.citySample(c, ph.c_str()));
        }
        for (size_t s = 0; s < states().size(); ++s) {
            for (const auto& ph : w.capitalTrained)
                trained.push_back(w.capitalSample(s, ph.c_str()));
            for (const auto& ph : w.capitalHeldout)
                held.push_back(w.capitalSample(s, ph.c_str()));
            for (const auto& ph : w.postalTrained)
                trained.push_back(w.postalSample(s, ph.c_str()));
            for (const auto& ph : w.postalHeldout)
                held.push_back(w.postalSample(s, ph.c_str()));
        }
        add("facts", "train", trained, kEvalTrainPerTask, nullptr, kStreamEvalTrain);
        add("facts", "heldout_phrasing", held, all, nullptr, kStreamEvalHeldout);
    }
    { // two_hop
        std::vector<Sample> trained, held;
        for (size_t ph = 0; ph < kTwoHop.size(); ++ph) {
            for (const Impl::TwoHop& q : w.twoHopTrained)
                trained.push_back(w.twoHopSample(q, ph));
            for (const Impl::TwoHop& q : w.twoHopHeldout)
                held.push_back(w.twoHopSample(q, ph));
        }
        const Sample canonical = fill(kTwoHop[0], { "Dallas", "Austin" });
        add("two_hop", "train", trained, kEvalTrainPerTask, &canonical, kStreamEvalTrain);
        add("two_hop", "heldout", held, all, nullptr, kStreamEvalHeldout);
    }
    { // addition
        std::vector<Sample> trained, held;
        for (const auto& ab : w.additionTrained)
            trained.push_back(Impl::additionSample(ab));
        for (const auto& ab : w.additionHeldout)
            held.push_back(Impl::additionSample(ab));
        const Sample canonical = Impl::additionSample({ kCanonicalA, kCanonicalB });
        add("addition", "train", trained, kEvalTrainPerTask, &canonical, kStreamEvalTrain);
        add("addition", "heldout", held, all, nullptr, kStreamEvalHeldout);
    }
    { // agreement
        std::vector<Sample> trained, held;
        for (int pass = 0; pass < 2; ++pass) {
            for (const Impl::Combo& c : pass == 0 ? w.comboTrained : w.comboHeldout)
                for (int numbers = 0; numbers < 4; ++numbers)
                    for (int relative = 0; relative < (c.nounClass == 1 ? 2 : 1); ++relative)
                        (pass == 0 ? trained : held).push_back(Impl::agreementSample(c, numbers, relative, rng));
        }
        add("agreement", "train", trained, kEvalTrainPerTask, nullptr, kStreamEvalTrain);
        add("agreement", "heldout", held, kEvalAgreementHeldoutMax, nullptr, kStreamEvalHeldout);
    }
    { // opposites
        std::vector<Sample> trained, held;
        for (size_t p = 0; p < antonyms().size(); ++p)
            for (int reversed = 0; reversed < 2; ++reversed) {
                for (const auto& ph : w.oppositesTrained)
                    trained.push_back(Impl::oppositesSample(p, reversed, ph.c_str()));
                for (const auto& ph : w.oppositesHeldout)
                    held.push_back(Impl::oppositesSample(p, reversed, ph.c_str()));
            }
        add("opposites", "train", trained, kEvalTrainPerTask, nullptr, kStreamEvalTrain);
        add("opposites", "heldout_phrasing", held, all, nullptr, kStreamEvalHeldout);
    }
    return items;
}

// ---------------------------------------------------------------- files

void writeTrainText(const World& world, uint64_t nLines, const std::string& path)
{
    io::AtomicFile file(path);
    std::string chunk;
    for (uint64_t i = 0; i < nLines; ++i) {
        chunk += world.trainLine(i);
        chunk.push_back('\n');
        if (chunk.size() > (1u << 20)) {
            file.write(chunk.data(), chunk.size());
            chunk.clear();
        }
    }
    file.write(chunk.data(), chunk.size());
    file.commit();
}

void writeHeldoutText(const World& world, uint64_t nLines, const std::string& path)
{
    std::string text;
    for (const auto& line : world.heldoutLines(static_cast<size_t>(nLines))) {
        text += line;
        text.push_back('\n');
    }
    io::writeFileAtomically(path, text);
}

void writeEvalJsonl(const World& world, const std::string& path)
{
    std::string text;
    for (const EvalItem& item : world.evalItems()) {
        nlohmann::ordered_json j;
        j["task"] = item.task;
        j["split"] = item.split;
        j["prompt"] = item.prompt;
        j["answer"] = item.answer;
        text += j.dump();
        text.push_back('\n');
    }
    io::writeFileAtomically(path, text);
}

} // namespace cs::organism
