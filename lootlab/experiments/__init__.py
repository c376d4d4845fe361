"""The experiments behind the report: one grid runner (``grid``), one typed measurement row
(``rows``), one set of verdict rules (``verdicts``), one table of sizes per report size
(``sizes``) and the run directory every page is drawn from (``rundir``)."""
