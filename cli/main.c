/* main.c: droverctl, the drover command-line client. Everything lives in cli.c and cmd-*.c. */
#include "cli.h"

int main(int argc, char **argv) {
        return cli_main(argc, argv);
}
