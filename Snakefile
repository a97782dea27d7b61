# The workflow's entry point at the repository root (`snakemake --cores 4 all` finds this file first):
# it only includes workflow/Snakefile. Rules, schema, report captions and profiles live under
# workflow/, Snakemake's catalog layout; `profiles` here links to workflow/profiles, because Snakemake
# looks for its default profile beside the Snakefile it runs.
include: "workflow/Snakefile"

# A rule of an included file never becomes the default target (Snakemake restores the includer's):
# name it, so that `snakemake` with no target runs `all` from here as from workflow/Snakefile.
workflow.default_target = "all"
