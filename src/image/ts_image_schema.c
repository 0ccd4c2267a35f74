/*
 * ts_image_schema.c: the JSON schemas Glance serves under /v2/schemas: the image schema
 * (Glance's base properties plus the custom properties of its default schema-image.json,
 * additionalProperties of type string, as clients such as glanceclient validate against),
 * the images collection, member and members.
 */
#include "image/ts_image_int.h"

static const char image_schema_text[] =
    "{\"name\":\"image\",\"properties\":{\"id\":{\"type\":\"string\",\"description\":\"An identifier for the image\",\"pat"
    "tern\":\"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$\"},\"na"
    "me\":{\"type\":[\"null\",\"string\"],\"description\":\"Descriptive name for the image\",\"maxLength\":255},\"statu"
    "s\":{\"type\":\"string\",\"readOnly\":true,\"description\":\"Status of the image\",\"enum\":[\"queued\",\"saving\",\"a"
    "ctive\",\"killed\",\"deleted\",\"uploading\",\"importing\",\"pending_delete\",\"deactivated\"]},\"visibility\":{\"ty"
    "pe\":\"string\",\"description\":\"Scope of image accessibility\",\"enum\":[\"community\",\"public\",\"private\",\"sh"
    "ared\"]},\"protected\":{\"type\":\"boolean\",\"description\":\"If true, image will not be deletable.\"},\"os_hid"
    "den\":{\"type\":\"boolean\",\"description\":\"If true, image will not appear in default image list response."
    "\"},\"checksum\":{\"type\":[\"null\",\"string\"],\"readOnly\":true,\"description\":\"md5 hash of image contents.\","
    "\"maxLength\":32},\"os_hash_algo\":{\"type\":[\"null\",\"string\"],\"readOnly\":true,\"description\":\"Algorithm to"
    " calculate the os_hash_value\",\"maxLength\":64},\"os_hash_value\":{\"type\":[\"null\",\"string\"],\"readOnly\":t"
    "rue,\"description\":\"Hexdigest of the image contents using the algorithm specified by the os_hash_algo"
    "\",\"maxLength\":128},\"owner\":{\"type\":[\"null\",\"string\"],\"description\":\"Owner of the image\",\"maxLength\":"
    "255},\"size\":{\"type\":[\"null\",\"integer\"],\"readOnly\":true,\"description\":\"Size of image file in bytes\"},"
    "\"virtual_size\":{\"type\":[\"null\",\"integer\"],\"readOnly\":true,\"description\":\"Virtual size of image in by"
    "tes\"},\"container_format\":{\"type\":[\"null\",\"string\"],\"description\":\"Format of the container\",\"enum\":[n"
    "ull,\"ami\",\"ari\",\"aki\",\"bare\",\"ovf\",\"ova\",\"docker\",\"compressed\"]},\"disk_format\":{\"type\":[\"null\",\"stri"
    "ng\"],\"description\":\"Format of the disk\",\"enum\":[null,\"ami\",\"ari\",\"aki\",\"vhd\",\"vhdx\",\"vmdk\",\"raw\",\"qc"
    "ow2\",\"vdi\",\"iso\",\"ploop\"]},\"created_at\":{\"type\":\"string\",\"readOnly\":true,\"description\":\"Date and tim"
    "e of image registration\"},\"updated_at\":{\"type\":\"string\",\"readOnly\":true,\"description\":\"Date and time"
    " of the last image modification\"},\"tags\":{\"type\":\"array\",\"description\":\"List of strings related to t"
    "he image\",\"items\":{\"type\":\"string\",\"maxLength\":255}},\"direct_url\":{\"type\":\"string\",\"readOnly\":true,\""
    "description\":\"URL to access the image file kept in external store\"},\"min_ram\":{\"type\":\"integer\",\"des"
    "cription\":\"Amount of ram (in MB) required to boot image.\"},\"min_disk\":{\"type\":\"integer\",\"description"
    "\":\"Amount of disk space (in GB) required to boot image.\"},\"self\":{\"type\":\"string\",\"readOnly\":true,\"d"
    "escription\":\"An image self url\"},\"file\":{\"type\":\"string\",\"readOnly\":true,\"description\":\"An image fil"
    "e url\"},\"stores\":{\"type\":\"string\",\"readOnly\":true,\"description\":\"Store in which image data resides. "
    " Only present when the operator has enabled multiple stores.  May be a comma-separated list of store"
    " identifiers.\"},\"schema\":{\"type\":\"string\",\"readOnly\":true,\"description\":\"An image schema url\"},\"loca"
    "tions\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"url\":{\"type\":\"string\",\"maxLength\":255"
    "},\"metadata\":{\"type\":\"object\"},\"validation_data\":{\"description\":\"Values to be used to populate the c"
    "orresponding image properties. If the image status is not 'queued', values must exactly match those "
    "already contained in the image properties.\",\"type\":\"object\",\"writeOnly\":true,\"additionalProperties\":"
    "false,\"properties\":{\"checksum\":{\"type\":\"string\",\"minLength\":32,\"maxLength\":32},\"os_hash_algo\":{\"type"
    "\":\"string\",\"maxLength\":64},\"os_hash_value\":{\"type\":\"string\",\"maxLength\":128}},\"required\":[\"os_hash_a"
    "lgo\",\"os_hash_value\"]}},\"required\":[\"url\",\"metadata\"]},\"description\":\"A set of URLs to access the im"
    "age file kept in external store\"},\"kernel_id\":{\"type\":[\"null\",\"string\"],\"pattern\":\"^([0-9a-fA-F]){8}"
    "-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$\",\"description\":\"ID of image s"
    "tored in Glance that should be used as the kernel when booting an AMI-style image.\",\"is_base\":false}"
    ",\"ramdisk_id\":{\"type\":[\"null\",\"string\"],\"pattern\":\"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){"
    "4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$\",\"description\":\"ID of image stored in Glance that should be u"
    "sed as the ramdisk when booting an AMI-style image.\",\"is_base\":false},\"instance_uuid\":{\"type\":\"strin"
    "g\",\"description\":\"Metadata which can be used to record which instance this image is associated with."
    " (Informational only, does not create an instance snapshot.)\",\"is_base\":false},\"architecture\":{\"desc"
    "ription\":\"Operating system architecture as specified in https://docs.openstack.org/python-glanceclie"
    "nt/latest/cli/property-keys.html\",\"type\":\"string\",\"is_base\":false},\"os_distro\":{\"description\":\"Commo"
    "n name of operating system distribution as specified in https://docs.openstack.org/python-glanceclie"
    "nt/latest/cli/property-keys.html\",\"type\":\"string\",\"is_base\":false},\"os_version\":{\"description\":\"Oper"
    "ating system version as specified by the distributor.\",\"type\":\"string\",\"is_base\":false},\"description"
    "\":{\"description\":\"A human-readable string describing this image.\",\"type\":\"string\",\"is_base\":false},\""
    "cinder_encryption_key_id\":{\"description\":\"Identifier in the OpenStack Key Management Service for the"
    " encryption key for the Block Storage Service to use when mounting a volume created from this image\""
    ",\"type\":\"string\",\"is_base\":false},\"cinder_encryption_key_deletion_policy\":{\"description\":\"States the"
    " condition under which the Image Service will delete the object associated with the 'cinder_encrypti"
    "on_key_id' image property.  If this property is missing, the Image Service will take no action\",\"typ"
    "e\":\"string\",\"enum\":[\"on_image_deletion\",\"do_not_delete\"],\"is_base\":false}},\"additionalProperties\":{\""
    "type\":\"string\"},\"links\":[{\"rel\":\"self\",\"href\":\"{self}\"},{\"rel\":\"enclosure\",\"href\":\"{file}\"},{\"rel\":\""
    "describedby\",\"href\":\"{schema}\"}]}";

json_t *ts_image_schema_image(void)
{
    json_error_t e;
    json_t *s = json_loads(image_schema_text, 0, &e);
    TS_ASSERT(s != NULL);
    return s;
}

static json_t *collection(const char *name, json_t *item)
{
    return json_pack("{s:s, s:{s:{s:s, s:o}, s:{s:s}, s:{s:s}, s:{s:s}}, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}",
                     "name", name, "properties", name, "type", "array", "items", item, "first", "type", "string",
                     "next", "type", "string", "schema", "type", "string", "links", "rel", "first", "href", "{first}",
                     "rel", "next", "href", "{next}", "rel", "describedby", "href", "{schema}");
}

json_t *ts_image_schema_images(void) { return collection("images", ts_image_schema_image()); }

json_t *ts_image_schema_member(void)
{
    return json_pack(
        "{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:[s, s, s]}, "
        "s:{s:b, s:s}}, s:b}",
        "name", "member", "properties", "member_id", "type", "string", "description",
        "An identifier for the image member (tenantId)", "image_id", "type", "string", "description",
        "An identifier for the image", "pattern",
        "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$", "created_at",
        "type", "string", "description", "Date and time of image member creation", "updated_at", "type", "string",
        "description", "Date and time of last modification of image member", "status", "type", "string",
        "description", "The status of this image member", "enum", "pending", "accepted", "rejected", "schema",
        "readOnly", 1, "type", "string", "additionalProperties", 0);
}

json_t *ts_image_schema_members(void) { return collection("members", ts_image_schema_member()); }
