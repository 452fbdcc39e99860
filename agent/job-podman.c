/* job-podman.c: the container runtime: which runtimes the node offers, and (to come) how a job
 * runs as `podman run` inside its transient unit. */
#include "agent-exec.h"

#include "drover/macro.h"

int agent_runtimes(const agent_config *cfg, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        if (strv_extend(&l, "systemd") < 0)
                return -ENOMEM;
        if (cfg && cfg->podman.enabled && cfg->podman.path && access(cfg->podman.path, X_OK) == 0)
                if (strv_extend(&l, "podman") < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}
