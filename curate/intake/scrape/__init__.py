"""`curate scrape`: web search results into the store, each image with its provenance.

Built on icrawler's Crawler/Feeder/Parser/Downloader, hardened where the stock classes are weak:

* the downloader fully decodes every file with `decode.inspect` (the stock check reads only the header:
  truncated JPEGs were saved, a decompression bomb killed the thread and silently ended the crawl), and
  puts the bytes in the content-addressed store, so the same bytes at two URLs are stored once;
* `--max` is exact: a thread claims a slot under a lock only for an image that is new to the query, and
  the crawl stops at N;
* one exception never kills a thread; no `logging.basicConfig` on the caller;
* downloader threads never touch the catalogue: they hand results to the main thread, which writes
  short transactions, always after the bytes are stored.

Safe to kill and re-run: `--max N` is the number of images the (engine, query) should have in total,
URLs already recorded (accepted or rejected) are skipped (an original missing from the store is first fetched
again from its recorded URL: `run._restore`), and a killed run leaves only stored files,
never a row without its file. Transient failures (timeouts, HTTP 5xx/429, cut connections) are reported
but not recorded, so the next run retries them. Against a hostile web, see `curate.intake.fetch_guard`.

Modules, in the order a crawl uses them:

    options.py    ScrapeOptions and the choices (EngineName, Licence): no network or catalogue import,
                  so the command line can list and check them without loading icrawler
    report.py     QueryReport, ScrapeReport: what a run did, per query
    engines/      one module per engine (bing, baidu, flickr, urls, google), each an `Engine` subclass
                  carrying that engine's icrawler feeder and parser and what differs per engine
    fetch.py      one image download within the deadline, its HTTP errors, URL and text checks
    crawl.py      the threads of one query's crawl: shared claims, the downloader, the crawler loop
    record.py     catalogue reads and writes of one query (the main thread only)
    run.py        `validate` and `scrape`: the orchestration

This package's `__init__` imports nothing, so importing `curate.intake.scrape.options` stays light.
"""
