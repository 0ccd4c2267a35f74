/*
 * ts_volume.h: the block storage service (Cinder v3 compatible): the API on
 * /v3/{project_id}, a scheduler and volume managers talking over the bus, and the
 * backends that hold volume data (sparse raw/qcow2 files under the data dir).
 */
#ifndef TS_VOLUME_H
#define TS_VOLUME_H

#include "ts_service.h"

extern const struct ts_service ts_volume_service;

#endif
