/* umpool/roles.h: the roles, once (C and C++).
 *
 * A role says what an allocation is for and picks its placement policy
 * (umpool::RolePolicy). Every list of roles is generated from this table: the
 * C++ enum umpool::Role and its names, the UMPOOL_CONF `<role>.` keys, the C
 * ABI's umpool_malloc_<role> / umpool_pool_malloc_<role> entry points and the
 * Python package's role names (read from umpool_role_name()).
 *
 * Columns: C++ enumerator, name, value. */
#ifndef UMPOOL_ROLES_H_
#define UMPOOL_ROLES_H_

#define UMPOOL_ROLES(X)          \
  X(kDefault, default, 0)        \
  X(kWeights, weights, 1)        \
  X(kKv, kv, 2)                  \
  X(kActivations, activations, 3)

#define UMPOOL_ROLE_COUNT_ONE_(e, name, value) +1
#define UMPOOL_NUM_ROLES (0 UMPOOL_ROLES(UMPOOL_ROLE_COUNT_ONE_))

#endif /* UMPOOL_ROLES_H_ */
