/* redact.h: the one rule, shared by the agent and the controller, for which environment variables
 * hold secrets (their values are shown as "**********" in job_env and artifacts/<id>/command). */
#pragma once

#include <stdbool.h>

#define REDACTED_VALUE "**********"

/* Case-insensitive on the whole NAME: true when it contains PASSWORD, PASSWD, PASSPHRASE, SECRET,
 * TOKEN, CREDENTIAL or PRIVATE, or has KEY/KEYS as a word ("API_KEY", "AWS_ACCESS_KEY_ID", "APIKEY"
 * at the end, "SSH_KEYS"), except the well-known settings ANSIBLE_HOST_KEY_CHECKING and
 * ANSIBLE_PARAMIKO_HOST_KEY_AUTO_ADD. A NULL name counts as secret. */
bool env_name_is_secret(const char *name);
