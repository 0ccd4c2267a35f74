/* netagent_apply.c: `netagent-apply` as a standalone program for tests/e2e/test_netagent.py
 * when the tinystack binary does not (yet) have the subcommand. Built by the test against
 * the build tree's libtslib.a. */
#include "network/agent/ts_netagent.h"

int main(int argc, char **argv)
{
    return ts_netagent_apply_main(argc, argv);
}
