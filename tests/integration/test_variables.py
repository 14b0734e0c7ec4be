"""The core variables, with the values nginx gives them."""
import os
import re

from backend import Backend
from conftest import NGINX, WEIR, Client, raw, wait_for


def test_core_variables(make_server):
    conf = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name example.org alias.org;
        location /v/ {
            return 200 "uri=$uri|request_uri=$request_uri|args=$args|is_args=$is_args|query_string=$query_string|host=$host|http_host=$http_host|server_name=$server_name|method=$request_method|scheme=$scheme|protocol=$server_protocol|remote_addr=$remote_addr|server_addr=$server_addr|server_port=$server_port|document_root=$document_root|request_filename=$request_filename|arg_a=$arg_a|cookie_c=$cookie_c|http_x_multi_word=$http_x_multi_word|content_length=$content_length|content_type=$content_type|https=$https|request=$request|connection_requests=$connection_requests|pid=$pid\n";
        }
        location /t { return 200 "$msec|$time_local|$time_iso8601|$request_time|$connection|$hostname|$request_id|$binary_remote_addr\n"; }
    }
    """
    s = make_server(conf)
    r = s.get("/v/a%20b?a=1&b=2", host="Example.ORG:8000",
              headers={"Cookie": "x=1; c=cookieval", "X-Multi-Word": "mw", "Content-Type": "text/x"})
    vals = dict(kv.split("=", 1) for kv in r.body.decode().strip().split("|"))
    assert vals["uri"] == "/v/a b"
    assert vals["request_uri"] == "/v/a%20b?a=1&b=2"
    assert vals["args"] == "a=1&b=2" and vals["is_args"] == "?" and vals["query_string"] == "a=1&b=2"
    assert vals["host"] == "example.org" and vals["http_host"] == "Example.ORG:8000"
    assert vals["server_name"] == "example.org"
    assert vals["method"] == "GET" and vals["scheme"] == "http" and vals["protocol"] == "HTTP/1.1"
    assert vals["remote_addr"] == "127.0.0.1" and vals["server_addr"] == "127.0.0.1"
    assert vals["server_port"] == str(s.port)
    assert vals["document_root"] == s.dir + "/html"
    assert vals["request_filename"] == s.dir + "/html/v/a b"
    assert vals["arg_a"] == "1" and vals["cookie_c"] == "cookieval" and vals["http_x_multi_word"] == "mw"
    assert vals["content_length"] == "" and vals["content_type"] == "text/x" and vals["https"] == ""
    assert vals["request"] == "GET /v/a%20b?a=1&b=2 HTTP/1.1"
    assert vals["connection_requests"] == "1"
    assert int(vals["pid"]) != s.master_pid()
    t = s.get("/t").body.decode().strip().split("|")
    assert re.fullmatch(r"\d+\.\d{3}", t[0])
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", t[1])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", t[2])
    assert re.fullmatch(r"\d+\.\d{3}", t[3])
    assert int(t[4]) >= 1 and t[5] == os.uname().nodename
    assert re.fullmatch(r"[0-9a-f]{32}", t[6])
    assert len(r.body) > 0


def test_status_and_bytes_in_log(make_server):
    conf = """
    log_format v '$status $bytes_sent $body_bytes_sent $request_completion $pipe $connection_requests';
    server { listen 127.0.0.1:%%PORT%%; access_log %%DIR%%/logs/v.log v; location / { } }
    """
    s = make_server(conf, files={"f.txt": "0123456789"})
    out = raw(s.port, "GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    header_len = out.index(b"\r\n\r\n") + 4
    lines = s.access_log("logs/v.log").splitlines()
    assert lines[0] == "200 %d 10 OK . 1" % (header_len + 10)
    assert lines[1].startswith("200 ") and lines[1].endswith(" 10 OK p 2")


def test_logged_values_as_nginx(make_server):
    # What the access log says where a variable has no value ("-") or was rewritten as sent, beside
    # Debian's nginx: $args and $query_string of a URI without "?" (found but empty after a bare
    # "?"), $server_protocol of an HTTP/0.9 request, $sent_http_location made absolute by the header
    # filter, and $proxy_internal_body_length (the client's Content-Length, none without a body).
    fields = ["$request", "$args", "$query_string", "$is_args", "$server_protocol",
              "$sent_http_location", "$proxy_internal_body_length", "$status", "$nginx_version"]
    requests = [
        "GET /a.txt HTTP/1.1\r\nHost: v.test\r\n\r\n",
        "GET /a.txt? HTTP/1.1\r\nHost: v.test\r\n\r\n",
        "GET /a.txt?x=1 HTTP/1.1\r\nHost: v.test\r\n\r\n",
        "GET /r/x HTTP/1.1\r\nHost: v.test\r\n\r\n",
        "GET /p/up HTTP/1.1\r\nHost: v.test\r\n\r\n",
        "POST /p/up HTTP/1.1\r\nHost: v.test\r\nContent-Length: 3\r\n\r\nabc",
        "GET /a.txt\r\n",
    ]
    logs = []
    for binary in (WEIR, NGINX):
        with Backend() as b:
            s = make_server("""
                log_format v '%s';
                server { listen 127.0.0.1:%%%%PORT%%%%; server_name v.test;
                         access_log %%%%DIR%%%%/logs/v.log v;
                         location /r/ { return 302 /elsewhere; }
                         location /p/ { proxy_pass http://127.0.0.1:%d/; } }
            """ % ("|".join(fields), b.port), files={"a.txt": b"a\n"}, binary=binary)
            for req in requests:
                c = Client(s.port)
                c.send(req)
                c.read_until_close() if "HTTP/1" not in req else c.response()
                c.close()
            wait_for(lambda: len(open(s.path("logs/v.log")).readlines()) == len(requests))
            logs.append(open(s.path("logs/v.log")).read().replace(str(s.port), "PORT").splitlines())
    assert logs[0] == logs[1]
    # $nginx_version is the nginx release weir behaves as (fastcgi_params' SERVER_SOFTWARE).
    assert logs[0][0] == "GET /a.txt HTTP/1.1|-|-||HTTP/1.1|-|-|200|1.22.1"
    assert logs[0][3].endswith("|http://v.test:PORT/elsewhere|-|302|1.22.1")
    assert logs[0][5].endswith("|3|200|1.22.1")
