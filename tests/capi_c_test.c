/* A plain C program against libumpool.so (issue 13): bad input, absurd sizes,
 * no GPU, double frees and foreign pointers are all errors with text; no call
 * aborts the process. Runs first with the default (managed) configuration,
 * which on a machine without a GPU cannot create a pool, then on the host
 * backend. Exit status 0 = every check held. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "umpool/umpool.h"

static int failures = 0;

#define CHECK(cond, what)                                                       \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "FAILED: %s (%s) last error: '%s'\n", what, #cond,      \
              umpool_last_error());                                             \
      ++failures;                                                               \
    }                                                                           \
  } while (0)

/* A call that failed: NULL or an error code, and text saying why. */
#define CHECK_ERROR(what) CHECK(umpool_last_error()[0] != '\0', what)

int main(void) {
  void* out = &out;
  /* 1. The default configuration: a managed pool on device 0. */
  umpool_clear_last_error();
  void* p = umpool_malloc(4096, 0, NULL);
  if (p == NULL) {
    CHECK(umpool_last_error_code() == UMPOOL_ERROR_UNAVAILABLE ||
              umpool_last_error_code() == UMPOOL_ERROR_OUT_OF_MEMORY,
          "no GPU: an error, not an abort");
    CHECK_ERROR("no GPU");
    CHECK(umpool_alloc(1 << 20, 0, NULL, 0, &out) != UMPOOL_OK && out == NULL, "no GPU (alloc)");
    printf("no usable GPU: '%s'\n", umpool_last_error());
    /* No pool was created: the host backend can still be configured. */
    CHECK(umpool_configure("backend:host,capacity:64MiB") == UMPOOL_OK, "configure host");
  } else {
    printf("a GPU pool served the first request\n");
    umpool_free(p, 4096, 0, NULL);
  }

  /* 2. Absurd sizes, SIZE_MAX, a negative size from a signed caller. */
  const size_t absurd[] = {SIZE_MAX, (size_t)1 << 50, (size_t)-4096};
  for (int i = 0; i < 3; ++i) {
    umpool_clear_last_error();
    CHECK(umpool_malloc(absurd[i], 0, NULL) == NULL, "absurd size: NULL");
    CHECK_ERROR("absurd size");
    CHECK(umpool_alloc(absurd[i], 0, NULL, 0, &out) == UMPOOL_ERROR_INVALID_ARGUMENT, "absurd: code");
    CHECK(out == NULL, "absurd: *out cleared");
    CHECK(umpool_malloc_kv(absurd[i], 0, NULL) == NULL, "absurd size, kv role");
  }
  /* Bad devices, roles and arguments. */
  umpool_clear_last_error();
  CHECK(umpool_malloc(64, -1, NULL) == NULL, "device -1");
  CHECK_ERROR("device -1");
  CHECK(umpool_alloc(64, 0, NULL, 99, &out) == UMPOOL_ERROR_INVALID_ARGUMENT, "role 99");
  CHECK(umpool_alloc(64, 0, NULL, 0, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "null out");
  CHECK(umpool_get_stats(0, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "null stats");
  CHECK(umpool_get_stats(1000, NULL) != UMPOOL_OK, "bad device stats");
  CHECK(umpool_configure(NULL) != UMPOOL_OK, "null conf");
  CHECK(umpool_prefetch_blocks(NULL, 3, 1, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "null array");
  CHECK(umpool_visit_spans(0, NULL, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "null visitor");
  CHECK(umpool_pool_restore(0, 1, 1, NULL, 2, NULL, NULL, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT,
        "null blocks");
  CHECK(umpool_end_allocate_to_pool(0, 5, 5) == UMPOOL_ERROR_FAILED_PRECONDITION, "end, no begin");
  CHECK(umpool_begin_allocate_to_pool(0, 5, 5, NULL, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT,
        "null filter");
  umpool_set_memory_fraction(7.0, 0);
  CHECK_ERROR("fraction 7");
  umpool_init(-5);
  CHECK_ERROR("device count -5");

  /* 3. Double frees and foreign pointers (on the host backend if there was no GPU). */
  p = umpool_malloc(4096, 0, NULL);
  if (p != NULL) {
    umpool_clear_last_error();
    umpool_free(p, 4096, 0, NULL);
    CHECK(umpool_last_error()[0] == '\0', "a good free");
    umpool_free(p, 4096, 0, NULL);
    CHECK(strstr(umpool_last_error(), "double free") != NULL, "double free");
    CHECK(umpool_free_block(p) == UMPOOL_ERROR_FAILED_PRECONDITION, "double free (status)");
    int on_stack = 0;
    umpool_clear_last_error();
    umpool_free(&on_stack, 4, 0, NULL);
    CHECK(strstr(umpool_last_error(), "not allocated by umpool") != NULL, "foreign pointer");
    CHECK(umpool_deallocate(&on_stack, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "foreign (status)");
    umpool_record_stream(&on_stack, NULL);
    CHECK_ERROR("record_stream of a foreign pointer");
    CHECK(umpool_prefetch(&on_stack, 0, 1, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "prefetch");
    CHECK(umpool_block_size(&on_stack) == 0, "block size of a foreign pointer");
    {
      int on_gpu = -1;
      CHECK(umpool_block_location(&on_stack, &on_gpu) == UMPOOL_ERROR_INVALID_ARGUMENT && on_gpu == -1,
            "location of a foreign pointer");
      CHECK(umpool_block_location(NULL, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "location, NULL output");
    }
    /* Private pools and sleep with bad arguments. */
    CHECK(umpool_set_pool_role(0, 1, 2, 9) == UMPOOL_ERROR_INVALID_ARGUMENT, "pool role 9");
    CHECK(strstr(umpool_last_error(), "invalid role") != NULL, "pool role text");
    CHECK(umpool_set_pool_role(-5, 1, 2, 1) == UMPOOL_ERROR_INVALID_ARGUMENT, "pool role device");
    CHECK(umpool_sleep_pool(0, 77, 78, 2u, 0u, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT,
          "sleep of an unknown pool");
    CHECK(umpool_sleep(0, 2u, 2u, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "offload and discard");
    CHECK(umpool_get_residency(0, 4, NULL) == UMPOOL_ERROR_INVALID_ARGUMENT, "residency");
    /* Still serving. */
    void* q = umpool_malloc(4096, 0, NULL);
    CHECK(q != NULL, "still serving");
    CHECK(umpool_free_block(q) == UMPOOL_OK, "free on its own stream");
  } else {
    fprintf(stderr, "FAILED: no pool at all: '%s'\n", umpool_last_error());
    ++failures;
  }
  printf("%s: %d failed checks\n", failures ? "FAIL" : "OK", failures);
  return failures ? 1 : 0;
}
