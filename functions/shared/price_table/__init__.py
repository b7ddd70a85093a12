"""The prices table: the one owner of its item format, its key scheme and every read and
write the pipeline makes of it (the webhook's conditional write, the enricher's history
query and conditional put, the drain's look-ups, the read side's queries and candles).

- `keys`: the packed sort key (event ms x 1000 + slot) and its decoding.
- `items`: a tick item's attribute names and its stream record (standard library only).
- `ticks`: tick items (encode, decode), the webhook's write, the enricher's history read and put.
"""
