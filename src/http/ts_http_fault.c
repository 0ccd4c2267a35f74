/*
 * ts_http_fault.c: renders an error as the fault body each OpenStack service sends for
 * it, so that clients parsing those bodies (novaclient, neutronclient, keystoneauth,
 * glanceclient, swiftclient, Tempest) read our messages as they read the real ones:
 * nova/cinder {"<faultName>": {"code", "message"}}, keystone {"error": {...}}, neutron
 * {"NeutronError": {"type", "message", "detail"}}, glance webob HTML pages, swift swob
 * HTML, heat's {"code", "error": {...}, "explanation", "title"}.
 */
#include "http/ts_http_internal.h"
#include "json/ts_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct status_info {
    int status;
    const char *title;        /* Python's http.client.responses phrase */
    const char *webob_class;  /* webob.exc class name */
    const char *explanation;  /* webob's default explanation */
    const char *nova_name;    /* nova/cinder fault key */
    const char *swift_expl;   /* swob RESPONSE_REASONS explanation ("" = no body) */
};

static const struct status_info statuses[] = {
    {400, "Bad Request", "HTTPBadRequest",
     "The server could not comply with the request since it is either malformed or otherwise incorrect.",
     "badRequest", ""},
    {401, "Unauthorized", "HTTPUnauthorized",
     "This server could not verify that you are authorized to access the document you requested. Either "
     "you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to "
     "supply the credentials required.",
     "unauthorized", "This server could not verify that you are authorized to access the document you requested."},
    {403, "Forbidden", "HTTPForbidden", "Access was denied to this resource.", "forbidden",
     "Access was denied to this resource."},
    {404, "Not Found", "HTTPNotFound", "The resource could not be found.", "itemNotFound",
     "The resource could not be found."},
    {405, "Method Not Allowed", "HTTPMethodNotAllowed", "The method is not allowed for this resource.",
     "badMethod", "The method is not allowed for this resource."},
    {406, "Not Acceptable", "HTTPNotAcceptable",
     "The resource could not be generated that was acceptable to your browser.", "computeFault",
     "The resource could not be generated that was acceptable to your browser."},
    {409, "Conflict", "HTTPConflict", "There was a conflict when trying to complete your request.",
     "conflictingRequest", "There was a conflict when trying to complete your request."},
    {410, "Gone", "HTTPGone", "This resource is no longer available.  No forwarding address is given.",
     "computeFault", ""},
    {411, "Length Required", "HTTPLengthRequired", "Content-Length header required.", "computeFault",
     "Length Required."},
    {412, "Precondition Failed", "HTTPPreconditionFailed", "Request precondition failed.", "computeFault",
     "A precondition for this request was not met."},
    {413, "Request Entity Too Large", "HTTPRequestEntityTooLarge",
     "The body of your request was too large for this server.", "overLimit",
     "The body of your request was too large for this server."},
    {415, "Unsupported Media Type", "HTTPUnsupportedMediaType",
     "The request media type is not supported by this server.", "badMediaType",
     "The request media type is not supported by this server."},
    {416, "Requested Range Not Satisfiable", "HTTPRequestRangeNotSatisfiable",
     "The Range requested is not available.", "computeFault", "The Range requested is not available."},
    {422, "Unprocessable Entity", "HTTPUnprocessableEntity", "Unable to process the contained instructions",
     "computeFault", "Unable to process the contained instructions"},
    {423, "Locked", "HTTPLocked", "The resource is locked", "computeFault", ""},
    {429, "Too Many Requests", "HTTPTooManyRequests",
     "The client has sent too many requests in a given amount of time.", "overLimit",
     "The client has sent too many requests in a given amount of time."},
    {500, "Internal Server Error", "HTTPInternalServerError",
     "The server has either erred or is incapable of performing the requested operation.", "computeFault",
     "The server has either erred or is incapable of performing the requested operation."},
    {501, "Not Implemented", "HTTPNotImplemented", "The request method is not implemented for this server.",
     "notImplemented", "The server is unable to process the request."},
    {503, "Service Unavailable", "HTTPServiceUnavailable",
     "The server is currently unavailable. Please try again at a later time.", "serviceUnavailable",
     "The server is currently unavailable. Please try again at a later time."},
    {504, "Gateway Timeout", "HTTPGatewayTimeout", "The gateway has timed out.", "computeFault",
     "The gateway has timed out."},
};

static const struct status_info *info_for(int status)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (statuses[i].status == status) return &statuses[i];
    /* unknown: treat as its class */
    return status >= 500 ? info_for(500) : info_for(400);
}

static char *dump(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) ts_panic("json_dumps failed");
    *len = strlen(s);
    return s;
}

/* Escapes text for HTML (webob escapes the explanation). */
static void html_escape(struct ts_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': ts_buf_appends(b, "&lt;"); break;
        case '>': ts_buf_appends(b, "&gt;"); break;
        case '&': ts_buf_appends(b, "&amp;"); break;
        case '"': ts_buf_appends(b, "&#34;"); break;
        default: ts_buf_append(b, s, 1);
        }
    }
}

char *ts_http_fault_render(enum ts_fault_style style, const struct ts_err *err, const char **ctype, size_t *len)
{
    int code = err ? err->code : TS_EIO;
    int status = err && err->status ? err->status : ts_err_status(code ? code : TS_EIO);
    if (status < 100 || status > 599) status = 500;
    const struct status_info *si = info_for(status);
    const char *title = si->status == status ? si->title : ts_err_title(status);
    const char *msg = err && err->msg[0] ? err->msg : si->explanation;
    const char *type = err && err->type[0] ? err->type : NULL;
    json_t *j;

    switch (style) {
    case TS_FAULT_KEYSTONE:
        *ctype = "application/json";
        j = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", status, "message", msg, "title", title);
        return dump(j, len);
    case TS_FAULT_NOVA:
    case TS_FAULT_CINDER: {
        *ctype = "application/json";
        const char *name = si->status == status ? si->nova_name : "computeFault";
        j = json_pack("{s:{s:i,s:s}}", name, "code", status, "message", msg);
        return dump(j, len);
    }
    case TS_FAULT_NEUTRON:
        *ctype = "application/json";
        j = json_pack("{s:{s:s,s:s,s:s}}", "NeutronError", "type", type ? type : si->webob_class, "message",
                      msg, "detail", "");
        return dump(j, len);
    case TS_FAULT_HEAT:
        *ctype = "application/json";
        j = json_pack("{s:i,s:{s:s,s:s,s:n},s:s,s:s}", "code", status, "error", "message", msg, "type",
                      type ? type : si->webob_class, "traceback", "explanation", si->explanation, "title", title);
        return dump(j, len);
    case TS_FAULT_SWIFT: {
        struct ts_buf b;
        ts_buf_init(&b, 0);
        if (err && err->msg[0]) {
            *ctype = "text/plain; charset=UTF-8";
            ts_buf_appends(&b, err->msg);
        } else if (si->status == status && si->swift_expl[0]) {
            *ctype = "text/html; charset=UTF-8";
            ts_buf_printf(&b, "<html><h1>%s</h1><p>%s</p></html>", title, si->swift_expl);
        } else {
            *ctype = "text/html; charset=UTF-8";
        }
        ts_buf_cstr(&b);
        return ts_buf_steal(&b, len);
    }
    case TS_FAULT_GLANCE:
    default: {
        /* webob's html_template_obj around body_template_obj (explanation<br /><br />\ndetail\ncomment\n) */
        struct ts_buf b;
        ts_buf_init(&b, 0);
        *ctype = "text/html; charset=UTF-8";
        ts_buf_printf(&b, "<html>\n <head>\n  <title>%d %s</title>\n </head>\n <body>\n  <h1>%d %s</h1>\n  ",
                      status, title, status, title);
        html_escape(&b, msg);
        ts_buf_appends(&b, "<br /><br />\n\n\n\n </body>\n</html>");
        return ts_buf_steal(&b, len);
    }
    }
}

char *ts_http_fault_unauth_body(enum ts_fault_style style, const char **ctype, size_t *len)
{
    if (style == TS_FAULT_SWIFT) {
        struct ts_err e = {.code = TS_EUNAUTH, .status = 401};
        return ts_http_fault_render(style, &e, ctype, len);
    }
    /* keystonemiddleware's auth_token answers the same JSON whatever the service */
    *ctype = "application/json";
    json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 401, "title", "Unauthorized", "message",
                          "The request you have made requires authentication.");
    return dump(j, len);
}
