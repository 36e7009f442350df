"""Hypothesis strategies for what a hostile or careless producer can put in JSON: lone
surrogates, non-finite and huge numbers, nesting. Shared by the contract's tests."""

from hypothesis import strategies as st

hostile_text = st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
                       | st.characters(), max_size=8)
hostile_json = st.recursive(
    st.none() | st.booleans() | st.integers() | hostile_text
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 5e-324]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=12,
)
