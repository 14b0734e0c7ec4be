#!/usr/bin/python3
"""Writes conf/koi-win, conf/koi-utf and conf/win-utf: charset_map blocks for the charset filter,
made from Python's codec tables (every byte from 80 to FF that has a character in both charsets).
Run from the repository's root; the files are committed."""
import codecs


def char(byte, charset):
    try:
        return bytes([byte]).decode(charset)
    except UnicodeDecodeError:
        return None


def write(path, src, dst, note):
    lines = ["# %s" % note, "# Made by scripts/gen_charset_maps.py from Python's codec tables.", "",
             "charset_map  %s  %s {" % (src, dst)]
    for b in range(0x80, 0x100):
        c = char(b, codecs.lookup(src).name)
        if c is None:
            continue
        if dst == "utf-8":
            to = c.encode("utf-8").hex().upper()
        else:
            try:
                to = c.encode(codecs.lookup(dst).name).hex().upper()
            except UnicodeEncodeError:
                continue
        lines.append("    %02X  %s ;  # U+%04X" % (b, to, ord(c)))
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


write("conf/koi-win", "koi8-r", "windows-1251", "koi8-r to windows-1251 and back.")
write("conf/koi-utf", "koi8-r", "utf-8", "koi8-r to UTF-8 and back.")
write("conf/win-utf", "windows-1251", "utf-8", "windows-1251 to UTF-8 and back.")
