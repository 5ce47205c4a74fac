#define _GNU_SOURCE
#include "CKeylessSys.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#ifdef __linux__
#include <unistd.h>
#include <sys/syscall.h>
#endif

long keyless_add_key(const char *type, const char *description, const void *payload, size_t len, int keyring) {
#if defined(__linux__) && defined(SYS_add_key)
    return syscall(SYS_add_key, type, description, payload, len, keyring);
#else
    errno = ENOSYS; return -1;
#endif
}

long keyless_keyctl(int operation, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
#if defined(__linux__) && defined(SYS_keyctl)
    return syscall(SYS_keyctl, operation, a2, a3, a4, a5);
#else
    errno = ENOSYS; return -1;
#endif
}

/* The few libsecret/glib declarations we need, so that building needs no -dev package.
   Layouts follow libsecret-1 (secret-schema.h) and glib (gerror.h); both are ABI-stable. */
typedef struct { const char *name; int type; } KSchemaAttribute;
typedef struct {
    const char *name; int flags; KSchemaAttribute attributes[32];
    int reserved; void *reserved1, *reserved2, *reserved3, *reserved4, *reserved5, *reserved6, *reserved7;
} KSchema;
typedef struct { unsigned int domain; int code; char *message; } KGError;

typedef int (*store_fn)(const KSchema *, const char *, const char *, const char *, void *, KGError **, ...);
typedef char *(*lookup_fn)(const KSchema *, void *, KGError **, ...);
typedef int (*clear_fn)(const KSchema *, void *, KGError **, ...);
typedef void (*free_fn)(char *);
typedef void (*error_free_fn)(KGError *);

static store_fn p_store; static lookup_fn p_lookup; static clear_fn p_clear; static free_fn p_free; static error_free_fn p_error_free;

static const KSchema schema = {
    "dev.keyless.Secret", 0,
    { { "application", 0 }, { "account", 0 }, { NULL, 0 } },
    0, NULL, NULL, NULL, NULL, NULL, NULL, NULL
};

static char *take_error(KGError *err, const char *fallback) {
    char *msg = strdup(err && err->message ? err->message : fallback);
    if (err && p_error_free) p_error_free(err);
    return msg;
}

int keyless_secret_load(char **error) {
    if (p_store) return 0;
    void *h = dlopen("libsecret-1.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) { *error = strdup("libsecret-1.so.0 is not installed"); return -1; }
    p_store = (store_fn)dlsym(h, "secret_password_store_sync");
    p_lookup = (lookup_fn)dlsym(h, "secret_password_lookup_sync");
    p_clear = (clear_fn)dlsym(h, "secret_password_clear_sync");
    p_free = (free_fn)dlsym(h, "secret_password_free");
    p_error_free = (error_free_fn)dlsym(h, "g_error_free");
    if (!p_store || !p_lookup || !p_clear || !p_free) { p_store = NULL; *error = strdup("libsecret-1.so.0 lacks the password API"); return -1; }
    return 0;
}

int keyless_secret_store(const char *collection, const char *account, const char *label, const char *secret, char **error) {
    if (keyless_secret_load(error) != 0) return -1;
    KGError *err = NULL;
    int ok = p_store(&schema, collection, label, secret, NULL, &err, "application", "keyless", "account", account, NULL);
    if (!ok || err) { *error = take_error(err, "the Secret Service refused to store the secret"); return -1; }
    return 0;
}

int keyless_secret_lookup(const char *account, char **secret, char **error) {
    if (keyless_secret_load(error) != 0) return -1;
    KGError *err = NULL;
    char *value = p_lookup(&schema, NULL, &err, "application", "keyless", "account", account, NULL);
    if (err) { *error = take_error(err, "the Secret Service lookup failed"); return -1; }
    if (!value) return 1;
    *secret = value;
    return 0;
}

int keyless_secret_clear(const char *account, char **error) {
    if (keyless_secret_load(error) != 0) return -1;
    KGError *err = NULL;
    p_clear(&schema, NULL, &err, "application", "keyless", "account", account, NULL);
    if (err) { *error = take_error(err, "the Secret Service could not delete the secret"); return -1; }
    return 0;
}

void keyless_secret_free(char *secret) { if (secret && p_free) p_free(secret); }
