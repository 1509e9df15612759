// The vocabulary of umpool/types.h: role and backend names, from their tables.
#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "umpool/types.h"

namespace umpool {
namespace {

constexpr std::array<absl::string_view, kNumRoles> kRoleNames = {
#define UMPOOL_ROLE_NAME_(e, name, value) #name,
    UMPOOL_ROLES(UMPOOL_ROLE_NAME_)
#undef UMPOOL_ROLE_NAME_
};
constexpr std::array<absl::string_view, 4> kBackendNames = {"managed", "device", "host", "vmm"};

}  // namespace

absl::string_view RoleName(Role role) {
  const auto i = static_cast<unsigned>(role);
  return i < kRoleNames.size() ? kRoleNames[i] : "invalid";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (int i = 0; i < kNumRoles; ++i) {
    if (kRoleNames[i] == name) return static_cast<Role>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown role '", name, "' (expected ",
                                                 absl::StrJoin(kRoleNames, ", "), ")"));
}

absl::string_view BackendKindName(BackendKind kind) {
  const auto i = static_cast<unsigned>(kind);
  return i < kBackendNames.size() ? kBackendNames[i] : "invalid";
}

absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name) {
  for (unsigned i = 0; i < kBackendNames.size(); ++i) {
    if (kBackendNames[i] == name) return static_cast<BackendKind>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown backend '", name, "' (expected ",
                                                 absl::StrJoin(kBackendNames, ", "), ")"));
}

}  // namespace umpool
