"""The glue between stages, file to file: featurize a split or CIFs into a feature file,
sample-then-reconstruct into a generation folder. The CLI calls these; `structrepdiff.api`
does the same in memory."""
