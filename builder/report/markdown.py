"""The little Markdown of the model card (headings, tables, lists, code blocks, bold and code) as
escaped HTML, for the report's last section.
"""

from __future__ import annotations

import re

from builder.report.common import e


def markdown_html(text: str) -> str:
    """The little Markdown the model card uses (headings, tables, lists, code blocks, ``**bold**`` and
    ``code``) as HTML; everything is escaped first."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0

    def inline(raw: str) -> str:
        escaped = e(raw)
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            out.append(f"<pre><code>{e(chr(10).join(lines[i + 1:end]))}</code></pre>")
            i = end + 1
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in block[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table class=\"tbl small\"><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in block[0])
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r)
                                                          + "</tr>" for r in body) + "</tbody></table>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    return "".join(out)
