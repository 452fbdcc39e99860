/* main.c: drover-agent's entry point: command line, configuration, then the runtime (agent.c). */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "agent.h"
#include "agent-internal.h"
#include "drover/log.h"

#define AGENT_DEFAULT_CONFIG "/etc/drover/agent.yaml"

static void help(void) {
        printf("Usage: drover-agent [--config PATH]\n"
               "\n"
               "Runs ansible-playbook jobs assigned by a drover controller as transient systemd units.\n"
               "\n"
               "  -c, --config PATH   configuration file (default " AGENT_DEFAULT_CONFIG ")\n"
               "      --version       print the version and exit\n"
               "  -h, --help          show this help\n");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *config_path = AGENT_DEFAULT_CONFIG;
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case ARG_VERSION:
                        printf("drover-agent %s\n", DROVER_VERSION);
                        return 0;
                case 'h':
                        help();
                        return 0;
                default:
                        fprintf(stderr, "Try 'drover-agent --help'.\n");
                        return 1;
                }
        if (optind < argc) {
                fprintf(stderr, "drover-agent: unexpected argument '%s'. Try 'drover-agent --help'.\n", argv[optind]);
                return 1;
        }

        log_set_ident("drover-agent");

        agent_config *cfg = NULL;
        char error[600];
        int r = agent_config_load_with_error(config_path, &cfg, error, sizeof error);
        if (r < 0) {
                fprintf(stderr, "%s\n", error);
                return 1;
        }
        log_set_max_level(cfg->log_level);

        r = agent_run(cfg);
        if (r > 0)
                /* A thread is still inside an HTTP request (the long-poll) and uses cfg: end the
                 * process now instead of freeing what it uses (and having leak checkers report it). */
                _exit(0);
        agent_config_free(cfg);
        return r < 0 ? 1 : 0;
}
