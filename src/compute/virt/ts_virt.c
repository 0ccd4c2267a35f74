/*
 * ts_virt.c: the table of built-in virt drivers. The libvirt driver is referenced weakly
 * so the compute module builds (with only the fake driver) before it is linked in.
 */
#include "compute/virt/ts_virt.h"

#include <string.h>

extern const struct ts_virt_ops ts_virt_libvirt_ops __attribute__((weak));

const struct ts_virt_ops *ts_virt_find(const char *name)
{
    if (!name) return NULL;
    if (!strcmp(name, "fake")) return &ts_virt_fake_ops;
    if (!strcmp(name, "libvirt")) return &ts_virt_libvirt_ops ? &ts_virt_libvirt_ops : NULL;
    return NULL;
}
