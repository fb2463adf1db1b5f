"""What the notebooks show beyond the stage calls: their tables, plots and comparisons, one module per notebook, so
every notebook cell stays a call into the package plus display (docs/architecture.md, glue).

    corpus   notebook 01: the pool, syllable splits, script length and coverage, emotions, speech and its timings
    export   notebook 05: the int8 report, PyTorch against each variant, a frame from the bundle alone, streaming
    live     notebook 06: the speech to animate, the live run, timing plots, the video, the browser page

Each function returns text, markdown or a matplotlib figure (the notebook displays it), so they run in tests too.
"""
