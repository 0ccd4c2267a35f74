/*
 * ts_object.h: the object storage service (Swift v1 API), served by `tinystack serve`
 * on port 8080 under /v1/AUTH_<project_id>.
 */
#ifndef TS_OBJECT_H
#define TS_OBJECT_H

#include "ts_service.h"

extern const struct ts_service ts_object_service;

#endif
