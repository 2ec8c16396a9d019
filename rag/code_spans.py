"""Where a model's Markdown answer is code: brackets there are code, not citations.

`items[0]` or `sys.argv[2]` in an answer's code looks exactly like a citation marker; taken
for one, it was removed (out of range) or made a link, and the code the reader copies was
broken. The citation checks, the streamed text and the web page all ask `in_code` about
the text before a bracket, so they agree on every bracket, whether the text arrived whole
or a token at a time.

Code is a fenced block (a line starting, after at most three spaces, with ``` or ~~~, to
the line that closes it or to the end of the answer) or, outside one, the rest of a line
after an unpaired backtick (`inline code`: a backtick that is closed later on the line
opens it as well, and the decision cannot wait for a streamed line to end).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def in_code(before: str) -> bool:
    """Whether the character that follows `before` (an answer's text up to it) is code."""
    fence = ""  # the fence that opened the block we are in, if any
    lines = before.split("\n")
    for line in lines[:-1]:  # whole lines: only they open or close a block
        marks = _FENCE.match(line)
        if not fence and marks:
            fence = marks.group(1)
        elif fence and marks and _closes(fence, marks.group(1), line):
            fence = ""
    if fence:
        return True
    current = lines[-1]
    if _FENCE.match(current):  # on the fence line itself (```python[1] is its info string)
        return True
    return current.count("`") % 2 == 1


def _closes(fence: str, marks: str, line: str) -> bool:
    """A line closes a block: the same character, at least as many, and nothing else."""
    return marks[0] == fence[0] and len(marks) >= len(fence) and not line.strip().strip(marks[0])
