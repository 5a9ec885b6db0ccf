/*
 * nitride secret | policy | audit — the Provisioning Service's admin CLI
 * (docs/provd.md).  Each talks to provd's /v1/admin/ API with libcurl.
 */
#ifndef NITRIDE_CLI_CMD_PROVISION_H
#define NITRIDE_CLI_CMD_PROVISION_H

int cmd_secret(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_audit(int argc, char **argv);

#endif
