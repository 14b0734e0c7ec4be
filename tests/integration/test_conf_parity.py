"""Configurations weir and Debian's nginx both load or both refuse, in the same words: each case is
loaded by both with `-t` and their verdicts, errors and warnings compared.
- A directive repeated in one block: those of nginx's bitmask slot (proxy_next_upstream,
  ssl_protocols, gzip_proxied ...) and of its types slot (gzip_types, charset_types ...) add up,
  warning of a value named twice; the others are "is duplicate".
- The upstream buffer rules where a location sets its own buffers: the busy and temp-file write
  sizes default to twice that location's buffers, not to what the server's made them.
- Sizes, bounds and worker_connections as nginx checks them; listen's so_keepalive with parts left
  out, temp paths' levels, access_log off beside a log, and errors in nginx's words (no directive
  name where nginx gives none)."""
import functools
import os
import re
import subprocess
import tempfile

import pytest

from conftest import NGINX, WEIR, check_conf

ADDING = [
    "proxy_next_upstream error; proxy_next_upstream timeout http_502;",
    "proxy_cache_use_stale error; proxy_cache_use_stale timeout updating;",
    "proxy_cache_methods GET; proxy_cache_methods POST;",
    "proxy_ignore_headers X-Accel-Expires; proxy_ignore_headers Expires Set-Cookie;",
    "proxy_ssl_protocols TLSv1.2; proxy_ssl_protocols TLSv1.3;",
    "ssl_protocols TLSv1.2; ssl_protocols TLSv1.3;",
    "userid_flags secure; userid_flags httponly;",
    "keepalive_disable msie6; keepalive_disable safari;",
    "gzip_proxied expired; gzip_proxied no-cache auth;",
    "fastcgi_next_upstream error; fastcgi_next_upstream timeout;",
    "fastcgi_cache_use_stale error; fastcgi_cache_use_stale timeout;",
    "fastcgi_cache_methods GET; fastcgi_cache_methods POST;",
    "fastcgi_ignore_headers Expires; fastcgi_ignore_headers Set-Cookie;",
    "uwsgi_next_upstream error; uwsgi_next_upstream timeout;",
    "uwsgi_ignore_headers Expires; uwsgi_ignore_headers Set-Cookie;",
    "scgi_next_upstream error; scgi_next_upstream timeout;",
    "scgi_cache_use_stale error; scgi_cache_use_stale timeout;",
    "grpc_next_upstream error; grpc_next_upstream timeout;",
    "grpc_ssl_protocols TLSv1.2; grpc_ssl_protocols TLSv1.3;",
    "memcached_next_upstream error; memcached_next_upstream not_found;",
    "gzip_types text/css; gzip_types text/plain;",
    "charset_types text/css; charset_types text/plain;",
    "ssi_types text/css; ssi_types text/plain;",
    # A value named twice, in one directive or across two: nginx's warning, once each.
    "gzip_proxied expired expired;",
    "proxy_next_upstream error; proxy_next_upstream error timeout;",
    "ssl_protocols TLSv1.2 TLSv1.3; ssl_protocols TLSv1.3;",
    "gzip_types text/css text/html; gzip_types TEXT/CSS;",
]

DUPLICATE = [
    "expires 1h; expires 2h;",
    "proxy_buffers 4 4k; proxy_buffers 8 8k;",
    "gzip_comp_level 1; gzip_comp_level 2;",
    "charset utf-8; charset koi8-r;",
    "proxy_http_version 1.0; proxy_http_version 1.1;",
]


@functools.lru_cache(maxsize=None)
def certificate():
    """ssl_certificate and ssl_certificate_key lines for a self-signed certificate, made once."""
    d = tempfile.mkdtemp(prefix="weir-conf-parity-")
    os.chmod(d, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", d + "/key.pem", "-out", d + "/cert.pem"],
                   check=True, capture_output=True)
    return "ssl_certificate %s/cert.pem; ssl_certificate_key %s/key.pem;" % (d, d)


def verdict(binary, directives, where="http"):
    directives = directives.replace("CERT", certificate() if "CERT" in directives else "")
    if where == "server":
        directives = "server { listen 127.0.0.1:%%%%PORT%%%%; %s }" % directives
    elif where == "location":
        directives = "server { listen 127.0.0.1:%%%%PORT%%%%; location / { %s } }" % directives
    elif where == "main":
        rc, err = check_conf(binary, full_conf=(
            "%s\npid %%%%DIR%%%%/logs/pid;\nerror_log %%%%DIR%%%%/logs/error.log;\nevents {}\n"
            "http { server { listen 127.0.0.1:%%%%PORT%%%%; } }\n" % directives))
        return said(rc, err)
    elif where == "events":
        rc, err = check_conf(binary, full_conf=(
            "pid %%%%DIR%%%%/logs/pid;\nerror_log %%%%DIR%%%%/logs/error.log;\nevents { %s }\n"
            "http { server { listen 127.0.0.1:%%%%PORT%%%%; } }\n" % directives))
        return said(rc, err)
    else:
        directives += "\nserver { listen 127.0.0.1:%%PORT%%; }"
    return said(*check_conf(binary, directives))


def said(rc, err):
    # "nginx: [warn] duplicate value "error" in /tmp/.../nginx.conf:3" -> the words and the line.
    said = [re.sub(r"^.*\[(warn|emerg)\] (\d+#\d+: )?", r"[\1] ", l).rsplit(" in ", 1)[0]
            for l in err.splitlines() if "[warn]" in l or "[emerg]" in l]
    said = [re.sub(r"(127\.0\.0\.\d):\d+", r"\1:PORT", l) for l in said]  # each its own port
    return rc, said


@pytest.mark.parametrize("directives", ADDING)
def test_repeats_add_up_as_in_nginx(directives):
    weir = verdict(WEIR, directives)
    assert weir == verdict(NGINX, directives)
    assert weir[0] == 0


@pytest.mark.parametrize("directives", DUPLICATE)
def test_repeats_are_duplicates_as_in_nginx(directives):
    weir = verdict(WEIR, directives)
    assert weir == verdict(NGINX, directives)
    assert weir[0] != 0 and "is duplicate" in weir[1][0]


# (where, directives, loads)
CHECKED = [
    ("location", "proxy_buffer_size 16k; proxy_buffers 8 16k;", True),
    ("location", "proxy_buffer_size 128k; proxy_buffers 4 256k;", True),
    ("location", "fastcgi_buffer_size 32k; fastcgi_buffers 16 16k;", True),
    ("location", "uwsgi_buffers 4 64k;", True),
    ("location", "proxy_buffer_size 1m;", False),
    ("location", "proxy_busy_buffers_size 64k;", False),
    ("location", "proxy_temp_file_write_size 1k;", False),
    ("location", "proxy_buffers 2 4k;", False),
    ("location", "proxy_buffers 0 4k;", False),
    ("location", "output_buffers 2 x;", False),
    ("location", "gzip_min_length 1m;", True),
    ("location", "gzip_min_length 1g;", False),
    ("location", "gzip_comp_level 10;", False),
    ("location", "gzip_comp_level x;", False),
    ("events", "worker_connections 1;", False),
    ("events", "worker_connections 2;", True),
    ("events", "worker_connections 1k;", False),
    ("http", "server { listen 127.0.0.1:%%PORT%% so_keepalive=30m::10; }", True),
    ("http", "server { listen 127.0.0.1:%%PORT%% so_keepalive=::; }", False),
    # Two servers on one port, neither with a name: nginx's warning of the name "" they share.
    ("http", "server { listen 127.0.0.1:%%PORT%%; }", True),
    ("location", "access_log off; access_log %%DIR%%/logs/a.log;", True),
    ("location", "client_body_temp_path %%DIR%%/t 3 1;", True),
    ("location", "client_body_temp_path %%DIR%%/t 1 2 3 4;", False),
    ("location", "satisfy maybe;", False),
    ("location", "error_page 499 /x;", False),
    ("location", "error_page 600 /x;", False),
    ("location", "proxy_pass ftp://x;", False),
    ("location", "proxy_pass http://;", False),
    ("http", "server { listen 127.0.0.1:%%PORT%%; location ~ /a { proxy_pass http://127.0.0.1/x; } }",
     False),
    ("location", "resolver 127.0.0.1 valid=x;", False),
    # A resolver named by host name is resolved at load, every address it has.
    ("location", "resolver localhost;", True),
    ("location", "resolver localhost:5353 127.0.0.1;", True),
    ("location", "resolver nonexistent.invalid;", False),
    ("location", "resolver 127.0.0.1:99999;", False),
    ("location", "gzip_window 3k;", False),
    ("location", "gzip_hash 3k;", False),
    ("location", "access_log logs/a.log combined gzip=4 flush=1m;", True),
    ("location", "sub_filter a b; sub_filter_types text/css; sub_filter_once off;", True),
    ("location", "dav_methods put copy; dav_access group:rw all:r; min_delete_depth 2;", True),
    ("location", "add_before_body /a; add_after_body /b; addition_types text/plain;", True),
    ("location", "secure_link $arg_h; secure_link_md5 $uri;", True),
    ("location", "random_index on;", True),
    ("location", "flv;", True),
    ("location", "mp4; mp4_buffer_size 1m; mp4_max_buffer_size 20m; mp4_start_key_frame on;", True),
    ("location", "mp4 on;", False),
    ("location", "mp4_buffer_size x;", False),
    ("location", "mp4_start_key_frame yes;", False),
    ("server", "mp4;", False),
    ("location", "uwsgi_pass suwsgi://127.0.0.1:1; uwsgi_ssl_name x; uwsgi_ssl_session_reuse off;", True),
    ("location", "uwsgi_pass suwsgi://127.0.0.1:1; uwsgi_ssl_verify on;", False),
    # grpc_pass has no default port: an address needs one (unless it names an upstream block).
    ("location", "grpc_pass grpc://127.0.0.1;", False),
    ("location", "grpc_pass grpc://127.0.0.1:50051;", True),
    ("location", "http2_chunk_size 0;", False),
    ("server", "http2_pool_size 100;", False),
    ("server", "http2_pool_size 120;", False),
    ("server", "connection_pool_size 0;", False),
    ("server", "request_pool_size 4104;", False),
    ("server", "request_pool_size 8k; connection_pool_size 256;", True),
    ("server", "CERT ssl_session_cache shared:SSL:10m builtin:1000;", True),
    ("server", "CERT ssl_session_cache foo;", False),
    # ssl_crl is read whether or not clients are verified; the files' errors name no directive.
    ("server", "CERT ssl_crl /nonexistent;", False),
    ("server", "CERT ssl_password_file /nonexistent;", False),
    ("server", "CERT ssl_session_ticket_key /nonexistent;", False),
    # Slots' words ('"x" directive invalid number') and handlers' own (said bare), as nginx has
    # them.
    ("location", "proxy_bind x;", False),
    ("location", "proxy_cache_valid x;", False),
    ("location", "proxy_cache_valid 99 1m;", False),
    ("location", "proxy_store_access x;", False),
    ("location", "fastcgi_split_path_info x;", False),
    ("location", "limit_req_status x;", False),
    ("location", "limit_conn_status 300;", False),
    ("location", "proxy_cache_min_uses 0;", True),
    ("location", "proxy_cookie_flags x;", False),
    ("location", "proxy_cookie_path x;", False),
    ("location", "proxy_http_version 2.0;", False),
    ("location", "gzip_http_version 2;", False),
    ("location", "types_hash_max_size x;", False),
    ("http", "map_hash_max_size x;", False),
    # nginx's epoll module's two and the core's last ones; the SO_SNDLOWAT family warns on Linux.
    ("events", "epoll_events 64; worker_aio_requests 8;", True),
    ("events", "epoll_events 1k;", False),
    ("events", "worker_aio_requests x;", False),
    ("events", "epoll_events 8; epoll_events 8;", False),
    ("location", "send_lowat 1k;", True),
    ("location", "proxy_send_lowat 0; fastcgi_send_lowat 4k;", True),
    ("location", "send_lowat 1q;", False),
    ("location", "proxy_send_lowat 1k; proxy_send_lowat 1k;", False),
    ("main", "debug_points abort;", True),
    ("main", "debug_points stop; debug_points stop;", False),
    ("main", "debug_points core;", False),
    ("main", "ssl_engine dynamic;", True),
    ("main", "ssl_engine nosuch;", False),
    ("main", "ssl_engine dynamic; ssl_engine dynamic;", False),
    # Contexts as nginx's tables give them: fastcgi_split_path_info at every level, proxy_pass in
    # limit_except (without a URI part).
    ("http", "fastcgi_split_path_info ^(.+\\.php)(/.*)$;", True),
    ("server", "fastcgi_split_path_info ^(.+\\.php)(/.*)$;", True),
    ("location", "limit_except GET { proxy_pass http://127.0.0.1:1; }", True),
    ("location", "limit_except GET { proxy_pass http://127.0.0.1:1/x/; }", False),
    ("location", "limit_except GET { fastcgi_pass 127.0.0.1:1; }", False),
    ("http", "proxy_cache_path %%DIR%%/c keys_zone=c:1m foo=1;", False),
    # A client certificate for the upstream needs its key, named as written; with variables, both
    # are made per connection (and a missing file is no load-time error).
    ("location", "proxy_pass https://127.0.0.1:1; proxy_ssl_certificate c.crt;", False),
    ("location", "proxy_pass https://127.0.0.1:1; proxy_ssl_certificate $host.crt;", False),
    ("location", "proxy_pass https://127.0.0.1:1; proxy_ssl_certificate $host.crt; "
                 "proxy_ssl_certificate_key $host.key;", True),
    ("location", "proxy_pass https://127.0.0.1:1; proxy_ssl_certificate $host.crt; "
                 "proxy_ssl_certificate_key $nosuch.key;", False),
    ("location", "proxy_ssl_certificate a.crt; proxy_ssl_certificate b.crt;", False),
    ("location", "proxy_bind $remote_addr transparent; fastcgi_bind 127.0.0.1 transparent;", True),
    ("location", "proxy_bind 127.0.0.1 opaque;", False),
    ("main", "worker_rlimit_nofile x;", False),
    # Names in debug_connection and set_real_ip_from resolve as hosts ("0" is 0.0.0.0), never with a
    # port.
    ("events", "debug_connection 0;", True),
    ("events", "debug_connection localhost:80;", False),
    ("http", "set_real_ip_from 0;", True),
    ("http", "set_real_ip_from localhost;", True),
    # A second types block adds to the first, warning of every extension named again (even with the
    # same type).
    ("server", "types { text/css css; application/wasm wasm; } types { application/wasm wasm; text/x-css CSS; }",
     True),
    # An invalid wildcard name is refused, on its address, where servers share the address (or a
    # name's regex has captures): nginx checks names only where it builds their hash.
    ("http", "server { listen 127.0.0.1:%%PORT%%; server_name *.*.a.com; }", False),
    ("http", "server { listen 127.0.0.2:%%PORT%%; server_name www.*.com; }", True),
    ("http", "server { listen 127.0.0.2:%%PORT%%; server_name www.*.com ~^(x); }", False),
]


@pytest.mark.parametrize("where,directives,loads", CHECKED)
def test_verdicts_as_nginx(where, directives, loads):
    weir = verdict(WEIR, directives, where)
    assert weir == verdict(NGINX, directives, where)
    assert (weir[0] == 0) == loads, weir
