/* main.c: drover-controller's entry point: command line, configuration, state directory, TLS
 * material, storage, the scheduler thread and the HTTPS server; runs until SIGTERM/SIGINT. */
#include <getopt.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include "controller.h"
#include "drover/log.h"
#include "drover/tls-ca.h"
#include "drover/util.h"
#include "http-server.h"

static const char *arg_config = NULL;

static void help(void) {
        printf("Usage: drover-controller [OPTIONS]\n\n"
               "The drover controller: an AWX-compatible HTTPS API (/api/v2) and the agent protocol\n"
               "(/api/agent/v1) for drover-agent execution nodes.\n\n"
               "  -c --config PATH   Configuration file (default %s/controller.yaml)\n"
               "  -h --help          Show this help\n"
               "     --version       Show the version\n",
               DROVER_SYSCONF_DIR);
}

/* 1 = run, 0 = exit successfully, < 0 = exit with failure */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        arg_config = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("drover-controller %s\n", DROVER_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("Unexpected argument: %s", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int run(int argc, char *argv[]) {
        controller_config *config = NULL;
        _cleanup_free_ char *tls_dir = NULL, *cert = NULL, *key = NULL;
        http_server *server = NULL;
        controller c = {};
        bool notify_ready = false, scheduler_running = false;
        sigset_t mask;
        int r, sig;

        log_set_ident("drover-controller");
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        r = controller_config_load(arg_config, &config);
        if (r < 0)
                return r;   /* the loader printed the error */
        log_set_max_level(config->log_level);
        c.config = config;

        r = mkdir_p(config->state_dir, 0700);
        if (r < 0) {
                log_error_errno(r, "Failed to create the state directory %s: %m", config->state_dir);
                goto finish;
        }
        r = mkdir_p(config->projects_root, 0755);
        if (r < 0) {
                log_error_errno(r, "Failed to create the projects directory %s: %m", config->projects_root);
                goto finish;
        }

        if (config->tls_cert) {
                cert = strdup(config->tls_cert);
                key = strdup(config->tls_key);
                if (!cert || !key) {
                        r = log_oom();
                        goto finish;
                }
        } else {
                tls_dir = strjoin(config->state_dir, "/tls", NULL);
                if (!tls_dir) {
                        r = log_oom();
                        goto finish;
                }
                r = tls_ca_ensure(tls_dir, config->tls_names, &cert, &key, &c.tls_ca_path);
                if (r < 0) {
                        log_error_errno(r, "Failed to set up the private CA in %s: %m", tls_dir);
                        goto finish;
                }
                printf("drover-controller: clients must trust the CA at %s\n", c.tls_ca_path);
                fflush(stdout);
        }

        r = controller_notify_init(&c);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the notifier: %m");
                goto finish;
        }
        notify_ready = true;

        r = storage_open(config->database, &c.storage);
        if (r < 0) {
                log_error_errno(r, "Failed to open the database %s: %m", config->database);
                goto finish;
        }
        r = api_bootstrap(&c);
        if (r < 0) {
                log_error_errno(r, "Failed to initialise the database: %m");
                goto finish;
        }

        /* Signals are taken with sigwait(); every thread started below inherits the mask. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);

        r = scheduler_start(&c);
        if (r < 0)
                goto finish;
        scheduler_running = true;
        r = http_server_start(&c, cert, key, &server);
        if (r < 0)
                goto finish;

        (void) sd_notify(0, "READY=1");
        log_info("listening on https://%s", config->listen);

        sigdelset(&mask, SIGPIPE);
        for (;;) {
                if (sigwait(&mask, &sig) == 0 && (sig == SIGTERM || sig == SIGINT))
                        break;
        }
        log_info("Received %s, stopping.", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        (void) sd_notify(0, "STOPPING=1");
        r = 0;

finish:
        c.shutting_down = true;
        if (notify_ready)
                controller_notify(&c);
        http_server_stop(server);
        if (scheduler_running)
                scheduler_stop(&c);
        if (c.storage)
                storage_close(c.storage);
        if (notify_ready)
                controller_notify_done(&c);
        free(c.tls_ca_path);
        controller_config_free(config);
        return r;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
