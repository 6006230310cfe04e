"""Model serving: vLLM engines in Ray actor pools, one pool per model role.

Import the parts from their modules (`got_data.engines.pool`, `.config`, `.types`, `.tiny`); this
package import stays light so that stages can build requests without loading Ray or vLLM.
"""
