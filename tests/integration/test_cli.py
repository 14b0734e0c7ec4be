"""The command line as nginx's: -v -V -h -t -T -q -g -p -c -e -s, and configuration errors reported with
nginx's wording and the file:line they are at."""
import os
import socket
import subprocess
import tempfile

import pytest

from conftest import WEIR


def run(*args, cwd=None):
    p = subprocess.run([WEIR, *args], capture_output=True, text=True, timeout=30, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def test_version_help_configure():
    rc, out, err = run("-v")
    assert rc == 0 and out == "" and err == "weir version: weir/0.1.0\n"
    rc, out, err = run("-V")
    assert rc == 0 and out == ""
    lines = err.splitlines()
    assert lines[0] == "weir version: weir/0.1.0"
    conf = [l for l in lines if l.startswith("configure arguments: ")][0]
    for built in ("rewrite", "proxy", "gzip", "charset", "map", "access", "empty_gif", "autoindex",
                  "split_clients", "referer", "userid", "ssi", "limit_conn", "limit_req",
                  "auth_basic", "geo", "browser", "grpc", "fastcgi", "uwsgi", "scgi", "memcached",
                  "upstream_keepalive", "upstream_hash", "upstream_ip_hash",
                  "upstream_least_conn", "upstream_random", "upstream_zone"):
        assert "--without-http_%s_module" % built not in conf
    assert "--without-http_mirror_module" not in conf
    assert "--without-http-cache" not in conf  # proxy_cache and its twins (#12)
    # nginx's optional modules and build options weir has, as Debian's nginx names them (tools such
    # as certbot's nginx plugin read them), and none it lacks.
    for present in ("--with-debug", "--with-pcre-jit", "--with-threads", "--with-file-aio",
                    "--with-http_ssl_module", "--with-http_stub_status_module",
                    "--with-http_realip_module", "--with-http_auth_request_module",
                    "--with-http_v2_module", "--with-http_dav_module", "--with-http_slice_module",
                    "--with-http_addition_module", "--with-http_flv_module", "--with-http_gunzip_module",
                    "--with-http_gzip_static_module", "--with-http_mp4_module",
                    "--with-http_random_index_module",
                    "--with-http_secure_link_module",
                    "--with-http_sub_module", "--with-http_geoip_module",
                    "--with-http_image_filter_module", "--with-http_xslt_module"):
        assert " %s " % present in conf + " "
    for absent in ("stream", "mail"):
        assert absent not in conf
    # nginx's lines of the TLS library, in its place.
    assert lines[1].startswith("built with OpenSSL 3.") and lines[2] == "TLS SNI support enabled"
    rc, out, err = run("-h")
    assert rc == 0 and out == ""
    assert "Usage: weir [-?hvVtTq] [-s signal] [-p prefix]\n            [-e filename] [-c filename] [-g directives]" in err
    assert "-s signal     : send signal to a master process: stop, quit, reopen, reload" in err
    rc, out, err = run("-?")
    assert rc == 0 and "Usage:" in err


def test_invalid_options():
    assert run("-x")[2] == 'weir: invalid option: "x"\n'
    assert run("-x")[0] == 1
    assert run("foo")[2] == 'weir: invalid option: "foo"\n'
    assert run("-s", "restart")[2] == 'weir: invalid option: "-s restart"\n'
    assert run("-c")[2] == 'weir: option "-c" requires file name\n'
    assert run("-p")[2] == 'weir: option "-p" requires directory name\n'
    assert run("-g")[2] == 'weir: option "-g" requires parameter\n'


def write_conf(text, extra_files=None):
    d = tempfile.mkdtemp(prefix="weir-cli-")
    os.chmod(d, 0o755)
    os.makedirs(os.path.join(d, "logs"))
    os.makedirs(os.path.join(d, "conf"))
    for name, content in (extra_files or {}).items():
        p = os.path.join(d, "conf", name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
    path = os.path.join(d, "conf", "nginx.conf")
    from conftest import free_port
    with open(path, "w") as f:
        f.write(text.replace("%%DIR%%", d).replace("%%PORT%%", str(free_port())))
    return d, path


GOOD = """pid %%DIR%%/logs/pid;
error_log %%DIR%%/logs/error.log;
events { }
http {
    include sub/*.conf;
    access_log %%DIR%%/logs/access.log;
    server { listen 127.0.0.1:%%PORT%%; root %%DIR%%; }
}
"""


def test_t_and_T_on_a_good_config():
    d, path = write_conf(GOOD, {"sub/a.conf": "types { text/a a; }\n", "sub/b.conf": "types { text/b b; }\n"})
    rc, out, err = run("-p", d + "/", "-c", path, "-t")
    assert rc == 0 and out == ""
    assert err == ("weir: the configuration file %s syntax is ok\n"
                   "weir: configuration file %s test is successful\n") % (path, path)
    rc, out, err = run("-p", d + "/", "-c", path, "-tq")
    assert rc == 0 and err == "" and out == ""
    rc, out, err = run("-p", d + "/", "-c", path, "-T")
    assert rc == 0
    assert out.startswith("# configuration file %s:\n%s" % (path, open(path).read()))
    assert "# configuration file %s/conf/sub/a.conf:\ntypes { text/a a; }\n" % d in out
    assert "# configuration file %s/conf/sub/b.conf:\n" % d in out
    # -c relative to the prefix.
    rc, out, err = run("-p", d, "-c", "conf/nginx.conf", "-t")
    assert rc == 0


BAD = [
    ("events {}\nhttp {\n    foo bar;\n}\n", 'unknown directive "foo" in %s:3'),
    ("events {}\nhttp {\n    listen 80;\n}\n", '"listen" directive is not allowed here in %s:3'),
    ("events {}\nhttp {\n    sendfile;\n}\n", 'invalid number of arguments in "sendfile" directive in %s:3'),
    ("events {}\nhttp {\n    sendfile maybe;\n}\n",
     'invalid value "maybe" in "sendfile" directive, it must be "on" or "off" in %s:3'),
    ("events {}\nhttp {\n    sendfile on;\n    sendfile off;\n}\n", '"sendfile" directive is duplicate in %s:4'),
    ("events {}\nhttp {\n    client_max_body_size 1x;\n}\n", '"client_max_body_size" directive invalid value in %s:3'),
    ("events {}\nhttp {\n    keepalive_timeout 5q;\n}\n", '"keepalive_timeout" directive invalid value in %s:3'),
    ("events {}\nhttp {\n    sendfile on\n}\n", 'unexpected "}" in %s:4'),
    ("events {}\nhttp {\n    server {\n", 'unexpected end of file, expecting "}" in %s:4'),
    ("events {}\nhttp {\n    root /x\n", 'unexpected end of file, expecting ";" or "}" in %s:4'),
    ("events {}\n}\n", 'unexpected "}" in %s:2'),
    ("events {}\nhttp {\n    server {\n        return 200 $nonesuch;\n    }\n}\n",
     'unknown "nonesuch" variable in %s:4'),
    ("events {}\nhttp {\n    server { location ~ ( { } }\n}\n", "pcre2_compile() failed: missing closing parenthesis"),
    ("events {}\nhttp {\n    include missing.conf;\n}\n", "missing.conf\" failed (2: No such file or directory) in %s:3"),
    ("events {}\nhttp {\n    server { listen 127.0.0.1:99999; }\n}\n",
     'invalid port in "127.0.0.1:99999" of the "listen" directive in %s:3'),
    ("http { }\n", 'no "events" section in configuration'),
    ("events {}\nhttp {\n    server { location /a { location /b { } } }\n}\n",
     'location "/b" is outside location "/a" in %s:3'),
    ("events {}\nhttp {\n    server { location /a {} location /a {} }\n}\n", 'duplicate location "/a" in %s:3'),
    ("events {}\nhttp {\n    server { location / { perl_modules perl/lib; } }\n}\n",
     'unknown directive "perl_modules" (from ngx_http_perl_module, which weir does not have) in %s:3'),
    ("events {}\nhttp {\n    server { listen 127.0.0.1:1 ssl; }\n}\n",
     'no "ssl_certificate" is defined for the "listen ... ssl" directive in %s:3'),
    ("events {}\nhttp {\n    root \"/x;\n}\n", "unexpected end of file"),
    ("events {}\nhttp {\n    root 'a'b;\n}\n", 'unexpected "b" in %s:3'),
    ("events { use kqueue; }\nhttp { }\n", 'invalid event type "kqueue" in %s:1'),
    ("events {}\nhttp { server { return 99999; } }\n", 'invalid return code "99999" in %s:2'),
    ("events {}\nhttp { server { if ($a { } } }\n", 'invalid condition "$a" in %s:2'),
    ("events {}\nhttp {\n    mirror /a;\n    mirror off;\n}\n", '"mirror" directive is duplicate in %s:4'),
    ("events {}\nhttp {\n    mirror off;\n    mirror /a;\n}\n", '"mirror" directive is duplicate in %s:4'),
    ("events {}\nhttp {\n    mirror_request_body yes;\n}\n",
     'invalid value "yes" in "mirror_request_body" directive, it must be "on" or "off" in %s:3'),
]


@pytest.mark.parametrize("text,message", BAD)
def test_t_on_bad_configs(text, message):
    d, path = write_conf(text)
    rc, out, err = run("-p", d + "/", "-c", path, "-t")
    assert rc == 1
    expected = message % path if "%s" in message else message
    assert expected in err, err
    assert err.startswith("weir: [emerg] ")
    assert err.endswith("weir: configuration file %s test failed\n" % path)


# Debian's modules-enabled/ as its libnginx-mod-* packages write it.
DEBIAN_MODULES = {
    "modules-enabled/50-mod-http-geoip.conf": "load_module modules/ngx_http_geoip_module.so;\n",
    "modules-enabled/50-mod-http-image-filter.conf":
        "load_module modules/ngx_http_image_filter_module.so;\n",
    "modules-enabled/50-mod-http-xslt-filter.conf":
        "load_module modules/ngx_http_xslt_filter_module.so;\n",
    "modules-enabled/50-mod-http-perl.conf": "load_module modules/ngx_http_perl_module.so;\n",
    "modules-enabled/50-mod-mail.conf": "load_module modules/ngx_mail_module.so;\n",
    "modules-enabled/50-mod-stream.conf": "load_module modules/ngx_stream_module.so;\n",
    "modules-enabled/50-mod-http-brotli-filter.conf":
        "load_module modules/ngx_http_brotli_filter_module.so;\n",
}


def test_load_module_of_debians_modules():
    """Debian's stock `include modules-enabled/*.conf`: a warning per module weir cannot load (and
    none for geoip, image_filter, xslt and brotli, which it builds in), the configuration loads; a
    directive of such a module is then unknown, naming it."""
    text = "include modules-enabled/*.conf;\n" + GOOD
    d, path = write_conf(text, dict(DEBIAN_MODULES, **{"sub/x.conf": ""}))
    rc, out, err = run("-p", d + "/", "-c", path, "-t")
    assert rc == 0, err
    warns = [l for l in err.splitlines() if "[warn]" in l]
    assert len(warns) == 3, err  # mail, stream, perl
    assert ('weir: [warn] weir cannot load nginx\'s dynamic module '
            '"modules/ngx_http_perl_module.so": its directives are unknown in '
            '%s/conf/modules-enabled/50-mod-http-perl.conf:1' % d) in warns
    for built_in in ("brotli", "geoip", "image", "xslt"):
        assert built_in not in err
    d, path = write_conf(text.replace("include sub/*.conf;", "perl_modules perl/lib;"),
                         DEBIAN_MODULES)
    rc, out, err = run("-p", d + "/", "-c", path, "-t")
    assert rc == 1
    assert ('unknown directive "perl_modules" (from ngx_http_perl_module, which weir does '
            'not have) in %s:6' % path) in err


def test_t_details_as_nginx():
    """-t opens the pid file (creating, never truncating) as nginx's does, so a pid path in a
    missing directory fails the test; -e naming a file that cannot be opened is nginx's alert, and
    stderr takes its place; a regex error names no empty place."""
    d, path = write_conf("pid %s/nodir/x.pid;\nevents {}\nhttp {}\n" % tempfile.gettempdir())
    rc, out, err = run("-p", d + "/", "-c", path, "-t")
    assert rc == 1
    assert ('weir: [emerg] open() "%s/nodir/x.pid" failed (2: No such file or directory)\n'
            % tempfile.gettempdir()) in err, err
    d, path = write_conf("events {}\nhttp {\n    server { location ~ \"(\" { } }\n}\n")
    rc, out, err = run("-p", d + "/", "-c", path, "-t", "-e", "/nonexistent/dir/err.log")
    assert rc == 1
    assert err == ('weir: [alert] could not open error log file: open() "/nonexistent/dir/err.log" '
                   "failed (2: No such file or directory)\n"
                   'weir: [emerg] pcre2_compile() failed: missing closing parenthesis in "(" in %s:3\n'
                   "weir: configuration file %s test failed\n" % (path, path)), err


def test_c_naming_a_directory():
    d, path = write_conf(GOOD, {"sub/x.conf": ""})
    rc, out, err = run("-p", d + "/", "-c", d + "/conf", "-t")
    assert rc == 1
    assert err == ('weir: [crit] pread() "%s/conf" failed (21: Is a directory)\n'
                   "weir: configuration file %s/conf test failed\n" % (d, d)), err


def test_g_directives():
    d, path = write_conf(GOOD.replace("pid", "worker_processes 1;\npid"), {"sub/x.conf": ""})
    rc, out, err = run("-p", d + "/", "-c", path, "-g", "worker_processes 2;", "-t")
    assert rc == 1 and '"worker_processes" directive is duplicate in %s:1' % path in err
    rc, out, err = run("-p", d + "/", "-c", path, "-g", "daemon off; daemon off;", "-t")
    assert rc == 1 and '"daemon" directive is duplicate in command line' in err
    rc, out, err = run("-p", d + "/", "-c", path, "-g", "http { }", "-t")
    assert rc == 1 and "block directives are not supported in -g option" in err
    rc, out, err = run("-p", d + "/", "-c", path, "-g", "daemon off", "-t")
    assert rc == 1 and 'unexpected end of parameter, expecting ";" in command line' in err


def test_signaller_errors():
    d, path = write_conf(GOOD, {"sub/x.conf": ""})
    rc, out, err = run("-p", d + "/", "-c", path, "-s", "reload")
    assert rc == 1
    assert err == 'weir: [error] open() "%s/logs/pid" failed (2: No such file or directory)\n' % d
    open(os.path.join(d, "logs", "pid"), "w").close()
    rc, out, err = run("-p", d + "/", "-c", path, "-s", "quit")
    assert rc == 1 and err == 'weir: [error] invalid PID number "" in "%s/logs/pid"\n' % d


def test_signaller_controls_a_running_server(make_server):
    s = make_server("server { listen 127.0.0.1:%%PORT%%; return 200 \"one\\n\"; }")
    assert s.get("/").body == b"one\n"
    s.set_conf(s.conf_text.replace('"one\\n"', '"two\\n"'))
    rc, out, err = run("-p", s.dir + "/", "-c", s.conf_path, "-s", "reload")
    assert rc == 0, err
    from conftest import wait_for
    wait_for(lambda: s.get("/").body == b"two\n", what="the reloaded configuration")
    # Unlike nginx, a reload that is not applied is reported and exits 1 (the signaller waits for
    # the master's verdict); the running configuration goes on.
    good = s.conf_text
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    s.set_conf(good.replace("server {", "server { listen 127.0.0.1:%d;" % busy.getsockname()[1], 1))
    rc, out, err = run("-p", s.dir + "/", "-c", s.conf_path, "-s", "reload")
    busy.close()
    assert rc == 1
    assert err == ("weir: [emerg] still could not bind()\n"
                   "weir: the new configuration was not applied; the running one goes on\n"), err
    assert s.get("/").body == b"two\n"
    with open(s.path("logs/error.log"), "w"):  # the emerg line is expected
        pass
    s.set_conf(good)
    rc, out, err = run("-p", s.dir + "/", "-c", s.conf_path, "-s", "reload")
    assert (rc, err) == (0, "")
    rc, out, err = run("-p", s.dir + "/", "-c", s.conf_path, "-s", "quit")
    assert rc == 0
    assert s.proc.wait(10) == 0
    assert not os.path.exists(s.pid_file)
    assert not os.path.exists(s.pid_file + ".reload")



def test_make_says_what_the_build_lacks():
    """A plain `make` on a machine without a build dependency stops before CMake with one line
    saying what is missing and to run `make deps` (dpkg's answer played by a stand-in)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    d = tempfile.mkdtemp(prefix="weir-deps-")
    fake = os.path.join(d, "dpkg-query")
    with open(fake, "w") as f:
        f.write('#!/bin/sh\nfor a; do last="$a"; done\n'
                '[ "$last" = libpcre2-dev ] && exit 1\nprintf "install ok installed"\n')
    os.chmod(fake, 0o755)
    env = dict(os.environ, PATH=d + ":" + os.environ["PATH"])
    p = subprocess.run([os.path.join(root, "scripts", "deps.sh"), "--check-build"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr == ("weir: the build needs libpcre2-dev: run 'make deps' (as root, or with sudo) "
                        "first\n"), p.stderr
    p = subprocess.run([os.path.join(root, "scripts", "deps.sh"), "--check-build"],
                       capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stderr) == (0, "")


def test_install_lays_out_nginxs_source_tree():
    """`make install`'s rules (cmake --install of the build the tests run): sbin/weir, conf/ with
    weir.conf kept when it is there already (weir.conf.default always), html/, logs/, the man page;
    the installed server tests its installed configuration."""
    build = os.path.dirname(os.path.realpath(WEIR))
    dest = tempfile.mkdtemp(prefix="weir-install-")
    prefix = "/opt/weir-test"
    root = dest + prefix

    def install():
        p = subprocess.run(["cmake", "--install", build, "--prefix", prefix, "--component",
                            "Unspecified"], env=dict(os.environ, DESTDIR=dest),
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr

    install()
    for f in ("sbin/weir", "conf/weir.conf", "conf/weir.conf.default", "conf/mime.types",
              "conf/fastcgi_params", "conf/fastcgi.conf", "conf/scgi_params", "conf/uwsgi_params",
              "html/index.html", "html/50x.html", "share/man/man8/weir.8"):
        assert os.path.isfile(os.path.join(root, f)), f
    assert os.path.isdir(os.path.join(root, "logs"))
    conf = os.path.join(root, "conf", "weir.conf")
    with open(conf, "a") as f:
        f.write("# kept\n")
    install()
    assert open(conf).read().endswith("# kept\n")
    p = subprocess.run([os.path.join(root, "sbin", "weir"), "-p", root + "/", "-c", conf, "-t"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "test is successful" in p.stderr
