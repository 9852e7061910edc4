// Declarations only (see ../algorithm.h).
#pragma once
