// umpool/version.h: the library version.
#ifndef UMPOOL_VERSION_H_
#define UMPOOL_VERSION_H_

#define UMPOOL_VERSION_MAJOR 0
#define UMPOOL_VERSION_MINOR 1
#define UMPOOL_VERSION_PATCH 0
#define UMPOOL_VERSION_STRING "0.1.0"

#endif  // UMPOOL_VERSION_H_
