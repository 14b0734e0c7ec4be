// OCSP stapling (ssl_stapling): a certificate's OCSP response sent in the handshake to clients that
// ask for it. The response comes from ssl_stapling_file as it is, or from the OCSP responder (the
// certificate's, or ssl_stapling_responder), fetched by each worker over HTTP/1.0 as nginx does: a
// handshake that finds the staple due starts the fetch and goes on without waiting; a good answer
// is kept until its nextUpdate and fetched again an hour later at most (five minutes at least
// before it expires), a failed one tried again in five minutes. nginx:
// src/event/ngx_event_openssl_stapling.c
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "event/ssl.h"

namespace weir {

// Sets up ctx's staples for conf's certificates (conf.stapling is on). warnings gets nginx's
// "ssl_stapling ignored, ..." lines for certificates that cannot be stapled.
Status setup_stapling(ssl_ctx_st* ctx, const SslServerConf& conf,
                      std::vector<std::string>* warnings);

}  // namespace weir
