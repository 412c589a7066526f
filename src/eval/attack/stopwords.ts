/**
 * The English stopwords no attack may change: function words (articles,
 * pronouns, auxiliaries, prepositions, conjunctions, negations, common
 * quantifiers and adverbs of degree), lower case, with and without the
 * apostrophe of contractions. Swapping one of these changes grammar or
 * negation rather than word choice, which is why PWWS and BERT-Attack (and
 * TextAttack's StopwordModification) leave them alone. Compared lower-cased.
 */
const WORDS = `
a about above across after afterwards again against ain all almost alone along already also although always am among
amongst an and another any anyhow anyone anything anyway anywhere are aren aren't around as at
be became because become becomes becoming been before beforehand behind being below beside besides between beyond both
but by
can cannot could couldn couldn't
d did didn didn't do does doesn doesn't doing don don't done down during
each either else elsewhere enough even ever every everyone everything everywhere except
few for former formerly from further furthermore
had hadn hadn't has hasn hasn't have haven haven't having he hence her here hereafter hereby herein hereupon hers herself
him himself his how however
i if in indeed into is isn isn't it it's its itself
just
latter latterly least less ll
m ma may me meanwhile might mightn mightn't mine more moreover most mostly much must mustn mustn't my myself
namely neither never nevertheless next no nobody none noone nor not nothing now nowhere
o of off on once one only onto or other others otherwise our ours ourselves out over own
per perhaps please
quite
rather re really
s same shan shan't she she's should should've shouldn shouldn't so some somehow someone something sometime sometimes
somewhere still such
t than that that'll the their theirs them themselves then thence there thereafter thereby therefore therein thereupon
these they this those though through throughout thru thus to together too toward towards
under unless until up upon us
ve very via
was wasn wasn't we well were weren weren't what whatever when whence whenever where whereafter whereas whereby wherein
whereupon wherever whether which while whither who whoever whole whom whose why will with within without won won't
would wouldn wouldn't
y yet you you'd you'll you're you've your yours yourself yourselves
`;

export const STOPWORDS: ReadonlySet<string> = new Set(WORDS.split(/\s+/).filter(Boolean));

export function isStopword(word: string): boolean {
  return STOPWORDS.has(word.toLowerCase().replace(/’/g, "'"));
}
