#pragma once
// Errors the engine reports to its callers. Every failure a user can cause (a bad file, a
// bad argument, a cancelled job) is thrown as cs::Error with a message meant for a person.

#include <stdexcept>
#include <string>

namespace cs {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message)
        : std::runtime_error(message)
    {
    }
};

// Thrown when a progress callback asked a long job to stop.
class Cancelled : public Error {
public:
    Cancelled()
        : Error("cancelled")
    {
    }
};

} // namespace cs
