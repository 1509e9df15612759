// umpool/umpool.hpp: umbrella header of the C++ API.
#ifndef UMPOOL_UMPOOL_HPP_
#define UMPOOL_UMPOOL_HPP_

#include "umpool/backend.h"
#include "umpool/options.h"
#include "umpool/pool.h"
#include "umpool/stats.h"
#include "umpool/types.h"
#include "umpool/version.h"

#endif  // UMPOOL_UMPOOL_HPP_
