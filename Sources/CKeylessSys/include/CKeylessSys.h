#ifndef CKEYLESS_SYS_H
#define CKEYLESS_SYS_H
#include <stddef.h>

/// Linux key retention service; return -1 with errno elsewhere.
long keyless_add_key(const char *type, const char *description, const void *payload, size_t len, int keyring);
long keyless_keyctl(int operation, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);

/// libsecret, loaded at run time with dlopen. 0 = ok, 1 = not found, -1 = error (message in *error, free with free()).
int keyless_secret_load(char **error);
int keyless_secret_store(const char *collection, const char *account, const char *label, const char *secret, char **error);
int keyless_secret_lookup(const char *account, char **secret, char **error);
int keyless_secret_clear(const char *account, char **error);
/// Frees and wipes a string returned by keyless_secret_lookup.
void keyless_secret_free(char *secret);

#endif

// RSA signing through the system's OpenSSL (libcrypto.so.3, loaded on first use); all return 0/NULL without it.
int keyless_openssl_available(void);
void *keyless_openssl_rsa_load(const unsigned char *der, long length);
void keyless_openssl_rsa_free(void *key);
int keyless_openssl_rsa_sign_sha256(void *key, const unsigned char *message, size_t length, unsigned char *signature, size_t *signature_length);
