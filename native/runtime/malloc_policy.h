/* The process-wide malloc policy of the addon (malloc_policy.c): applied once when the addon loads. */
#ifndef MK_MALLOC_POLICY_H
#define MK_MALLOC_POLICY_H

void mk_retain_memory(void);

#endif
