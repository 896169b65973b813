# perffold.awk — fold `perf script -F comm,tid,period,ip,sym,dso` output
# (call chains recorded with --call-graph dwarf) into self time per
# function and the call chains that lead to it; used by bench.sh --profile.
#
#   perf script -i perf.data -F comm,tid,period,ip,sym,dso | awk -v depth=8 -f perffold.awk
#
# Input, per sample: a header line (comm tid period), one line per frame
# (innermost first: address, symbol or [unknown], (dso)), a blank line.
# A sample counts for its innermost frame that has a symbol: libcrypto's
# internal functions have none without debug symbols, so their time goes
# to the nearest exported caller (BN_mod_exp_mont, EVP_DigestUpdate, ...)
# instead of being spread over thousands of addresses. The chain is the
# next `depth` named callers, recursion collapsed.
# Output (unsorted): "T<TAB>samples", "S<TAB>n<TAB>function [dso]",
# "C<TAB>n<TAB>function [dso]<TAB> <- caller <- caller ...".
function base(p) { sub(/^\(/, "", p); sub(/\)$/, "", p); n = split(p, a, "/"); return a[n] }
function done() {
	if (nf == 0) return
	total++
	self = ""; c = ""; k = 0; last = ""
	for (i = 1; i <= nf; i++) {
		if (sym[i] == "[unknown]") continue
		if (self == "") { self = sym[i] " [" dso[i] "]"; last = sym[i]; continue }
		if (sym[i] == last) continue
		last = sym[i]
		if (k < depth) { c = c " <- " sym[i]; k++ }
	}
	if (self == "") self = "(no symbol, no unwind info) [" dso[1] "]"
	cnt[self]++
	ch[self SUBSEP c]++
	nf = 0
}
/^[^ \t]/ { done(); next }
/^[ \t]*$/ { done(); next }
{
	line = $0; sub(/^[ \t]+/, "", line)
	d = line; sub(/^.* \(/, "(", d)
	s = line; sub(/^[0-9a-f]+ /, "", s); sub(/ \([^()]*\)$/, "", s)
	nf++; sym[nf] = s; dso[nf] = base(d)
}
END {
	done()
	print "T\t" total
	for (x in cnt) printf "S\t%d\t%s\n", cnt[x], x
	for (x in ch) { split(x, p, SUBSEP); printf "C\t%d\t%s\t%s\n", ch[x], p[1], p[2] }
}
