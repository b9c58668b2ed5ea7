/*
 * front_tls: HTTPS on the front (tls.cert_file, tls.key_file, tls.client_ca_file). libmicrohttpd
 * speaks TLS through GnuTLS; this module hands it the certificate through GnuTLS's retrieve callback
 * rather than as fixed memory, so SIGHUP can swap in a new certificate and key (or client CA bundle)
 * while connections keep going: a handshake uses the set current when it starts, and sets replaced by
 * a reload stay allocated until front_tls_free (a few KiB per reload), since GnuTLS may still hold
 * them. Only TLS 1.2 and 1.3 are offered. With tls.client_ca_file set every request must carry a
 * client certificate that chains to one of its CAs (front_tls_check_peer); libmicrohttpd asks
 * clients for one, the check itself is ours so that it follows reloads.
 *
 * The key file must not be readable by other users (a Kubernetes Secret mount needs defaultMode 0400
 * or 0440). Errors name the key at fault ("tls.key_file: ..."); no key material is ever logged.
 */
#ifndef DP_FRONT_TLS_H
#define DP_FRONT_TLS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

typedef struct front_tls front_tls;

/**
 * Load cfg's TLS files. Returns 0 with *out NULL when the front is plain HTTP (no tls.cert_file), 0
 * with *out set when HTTPS is on, or -1 with a message naming the key in err. Registers the SIGHUP
 * hook (reload.h) on success.
 */
int front_tls_new(const dp_config *cfg, front_tls **out, char *err, size_t errlen);
/** The flags to OR into MHD_start_daemon's (MHD_USE_TLS; 0 for t == NULL). */
unsigned front_tls_mhd_flags(const front_tls *t);
/** Options for MHD_OPTION_ARRAY (terminated by MHD_OPTION_END; only the end for t == NULL). Valid
 *  until front_tls_free. */
struct MHD_OptionItem *front_tls_mhd_options(front_tls *t);
/** With tls.client_ca_file: 0 when the connection's client certificate chains to a trusted CA, else -1
 *  and why in msg (for the writer's 403). Always 0 without a client CA or for t == NULL. */
int front_tls_check_peer(front_tls *t, struct MHD_Connection *c, char *msg, size_t msglen);
/** Unregister the reload hook and free everything (after MHD_stop_daemon). NULL is fine. */
void front_tls_free(front_tls *t);

#endif
