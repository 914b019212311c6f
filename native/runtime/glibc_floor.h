/*
 * The package's prebuilt binaries run on glibc 2.28 and newer (Node 20's own floor), although
 * they are built on a newer glibc: scripts/prebuild.mjs passes this header with -include, and it
 * binds the symbols whose default version is newer than 2.28 to their oldest version, which
 * every newer glibc still exports (dlopen and the pthread calls moved into libc.so.6 in 2.34;
 * exp / log / pow got new versions in 2.29 with the same results). A build for this machine
 * alone (npm ci, build-native.mjs) does not use it. prebuild.mjs checks the binary's needs: a
 * newly used symbol of a newer version fails there, and gets its line here.
 */
#ifndef MOEKIT_GLIBC_FLOOR_H
#define MOEKIT_GLIBC_FLOOR_H

/* No #include here: a system header read before a source's own `#define _GNU_SOURCE` would lock
 * its features out. prebuild.mjs passes this header for glibc targets only. */
#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__))
#if defined(__x86_64__)
#define MK_GLIBC_OLDEST "GLIBC_2.2.5"
#else
#define MK_GLIBC_OLDEST "GLIBC_2.17"
#endif
#define MK_GLIBC_OLDEST_VERSION(sym) __asm__(".symver " #sym "," #sym "@" MK_GLIBC_OLDEST)
MK_GLIBC_OLDEST_VERSION(dlopen);
MK_GLIBC_OLDEST_VERSION(dlsym);
MK_GLIBC_OLDEST_VERSION(dlerror);
MK_GLIBC_OLDEST_VERSION(pthread_create);
MK_GLIBC_OLDEST_VERSION(pthread_once);
MK_GLIBC_OLDEST_VERSION(pthread_key_create);
MK_GLIBC_OLDEST_VERSION(pthread_getspecific);
MK_GLIBC_OLDEST_VERSION(pthread_setspecific);
MK_GLIBC_OLDEST_VERSION(pthread_sigmask);
MK_GLIBC_OLDEST_VERSION(exp);
MK_GLIBC_OLDEST_VERSION(log);
MK_GLIBC_OLDEST_VERSION(pow);
#undef MK_GLIBC_OLDEST_VERSION
#endif

#endif
