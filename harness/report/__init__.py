"""Reports: verdict wording, run artifacts, HTML, Markdown/JUnit, plots, trends, remedies, symptoms, comparisons, latency bands, the truth table."""
