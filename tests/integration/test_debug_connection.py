"""debug_connection (#13): a connection from an address it names logs every level, whatever the
error_log's level; others log only what the level lets through. Beside Debian's nginx (built
--with-debug, where the directive works): the info line of a bad request ("client sent invalid
request") is in the log for a named client and not for another one. Its [debug] lines are
test_debug_log.py's."""
import pytest

from conftest import NGINX, WEIR, check_conf, raw, wait_for

FULL = r"""
daemon off;
pid %%DIR%%/logs/server.pid;
error_log %%DIR%%/logs/error.log error;
events { worker_connections 64; debug_connection 127.0.0.3; debug_connection 10.1.0.0/16;
         debug_connection unix:; }
http {
    access_log off;
    client_body_temp_path %%DIR%%/client_body_temp;
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 "x"; } }
}
"""


def bad_request(port, source):
    return raw(port, b"BAD\r\n\r\n", timeout=10, source=source)


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_named_clients_log_every_level(make_server, binary):
    s = make_server(full_conf=FULL, binary=binary)
    assert bad_request(s.port, "127.0.0.2").startswith(b"HTTP/1.1 400 ")
    assert bad_request(s.port, "127.0.0.3").startswith(b"HTTP/1.1 400 ")
    wait_for(lambda: "client: 127.0.0.3" in s.error_log(), what="the named client's info line")
    lines = [l for l in s.error_log().splitlines() if "client sent invalid" in l]
    assert len(lines) == 1 and "[info]" in lines[0], lines
    assert lines[0].endswith(": *2 client sent invalid method while reading client request line, "
                             'client: 127.0.0.3, server: , request: "BAD"'), lines
    assert "127.0.0.2" not in s.error_log()


@pytest.mark.parametrize("directive,rc,message", [
    ("debug_connection 10.0.0.1/33;", 1, 'host not found in debug_connection "10.0.0.1/33"'),
    ("debug_connection no-such-host.invalid;", 1,
     'host not found in debug_connection "no-such-host.invalid"'),
    ("debug_connection 10.0.0.1/8;", 0, "low address bits of 10.0.0.1/8 are meaningless"),
    ("debug_connection localhost; debug_connection ::1/128; debug_connection unix:;", 0, ""),
])
def test_load_messages_as_nginx(directive, rc, message):
    for binary in (WEIR, NGINX):
        got, err = check_conf(binary, full_conf="events { %s }\nhttp { }\n" % directive)
        assert got == rc and message in err, (binary, err)
