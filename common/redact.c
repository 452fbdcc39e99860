/* redact.c: which environment variable names hold secrets (see redact.h). */
#include "drover/redact.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "drover/macro.h"

static bool is_word_char(char c) {
        return isalnum((unsigned char) c);
}

bool env_name_is_secret(const char *name) {
        static const char *const words[] = { "PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL",
                                             "PRIVATE" };
        static const char *const settings[] = { "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_PARAMIKO_HOST_KEY_AUTO_ADD" };

        if (!name)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(settings); i++)
                if (strcasecmp(name, settings[i]) == 0)
                        return false;
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strcasestr(name, words[i]))
                        return true;

        /* KEY as a word: delimited by a non-alphanumeric character or the ends; KEY(S) at the very end
         * also when glued to a word before it (APIKEY) */
        size_t n = strlen(name);
        for (const char *p = name; (p = strcasestr(p, "KEY")); p += 3) {
                size_t at = (size_t) (p - name), end = at + 3;
                if (end < n && toupper((unsigned char) name[end]) == 'S' && (end + 1 == n || !is_word_char(name[end + 1])))
                        end++;
                bool before = at == 0 || !is_word_char(name[at - 1]);
                bool after = end == n || !is_word_char(name[end]);
                if (after && (before || end == n))
                        return true;
        }
        return false;
}
