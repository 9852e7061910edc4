// Declarations only: what LibTorch's ProcessGroupGloo.hpp names of Gloo. The wheel ships that
// header but not Gloo's, and the shim (../../shim.cpp) only calls ProcessGroupGloo's exported
// functions, so names and the store interface it overrides are all it needs.
#pragma once
#include "context.h"
