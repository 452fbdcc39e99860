/* tls-ca.h: a private certificate authority for a controller with no certificate configured.
 * On first start it writes <dir>/ca.crt, <dir>/ca.key (0600), <dir>/server.crt and
 * <dir>/server.key (0600), the server certificate signed by the CA and valid for localhost,
 * 127.0.0.1, ::1, the machine's hostname and every name in extra_names. Later starts reuse them
 * (the server certificate is re-issued when a configured name is missing from it). */
#pragma once

#include "drover/macro.h"

int tls_ca_ensure(const char *dir, char *const *extra_names, char **ret_cert_path, char **ret_key_path,
                  char **ret_ca_path);
