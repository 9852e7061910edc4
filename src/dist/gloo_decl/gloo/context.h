// Declarations only (see algorithm.h): ProcessGroupGloo.hpp's inline code names this member.
#pragma once
#include <chrono>
namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
} // namespace gloo
