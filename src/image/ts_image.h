/*
 * ts_image.h: the image service (Glance v2 compatible). main.c picks it up through
 * ts_image_service.
 */
#ifndef TS_IMAGE_H
#define TS_IMAGE_H

#include "ts_service.h"

extern const struct ts_service ts_image_service;

#endif
