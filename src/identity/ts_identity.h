/*
 * ts_identity.h: the identity service (Keystone v3). Besides the service itself, main.c
 * uses the bootstrap (keystone-manage bootstrap) and the token key rotation.
 */
#ifndef TS_IDENTITY_H
#define TS_IDENTITY_H

#include "ts_service.h"

extern const struct ts_service ts_identity_service;

/* One catalog entry registered at bootstrap: service type/name and its URL (all three
 * interfaces get the same URL). */
struct ts_identity_catalog_entry {
    const char *type;
    const char *name;
    const char *url;
};

/* Creates (or updates, idempotently) the Default domain, admin/service projects, the admin
 * user with admin_password, the service user "tinystack" with service_password, roles
 * admin/member/reader/service with admin->member->reader implications, RegionOne and the
 * given catalog. env->conf must have [identity] connection set (init ran). */
int ts_identity_bootstrap(struct ts_service_env *env, const char *admin_password, const char *service_password,
                          const struct ts_identity_catalog_entry *catalog, int n_catalog, struct ts_err *err);

#endif
