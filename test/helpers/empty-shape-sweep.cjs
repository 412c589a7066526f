// Every native op called with each of its dimensions 0 in turn (then all of them), in one process: what the
// empty-shape test (test/empty-shapes.test.ts) runs in a child, so that a crash (SIGFPE, SIGSEGV) fails that test
// instead of killing the test runner. Each case's body is the source of a call on the raw addon `a`, with helpers F
// (float tensor), D64 (float64), I (int32) and U (uint8). Prints one line per call: CASE, then RESULT (the shapes
// returned) or THROW (the error's message). Usage: node empty-shape-sweep.cjs ADDON_PATH
'use strict';
const a = require(process.argv[2]);
const P = (s) => s.reduce((x, y) => x * y, 1);
function F(s, fill) { const d = new Float32Array(P(s)); for (let i = 0; i < d.length; i++) d[i] = fill !== undefined ? fill : Math.sin(i + 1); return a.fromTypedArray(d, s); }
function D64(s, fill) { const d = new Float64Array(P(s)); for (let i = 0; i < d.length; i++) d[i] = fill !== undefined ? fill : Math.sin(i + 1); return a.fromTypedArray(d, s); }
function I(s, f) { const d = new Int32Array(P(s)); for (let i = 0; i < d.length; i++) d[i] = typeof f === 'function' ? f(i) : f !== undefined ? f : 0; return a.fromTypedArray(d, s); }
function U(s, f) { const d = new Uint8Array(P(s)); for (let i = 0; i < d.length; i++) d[i] = typeof f === 'function' ? f(i) : f !== undefined ? f : 1; return a.fromTypedArray(d, s); }
function R(x) {
  if (x == null) return x;
  if (Array.isArray(x)) return x.map(R);
  if (typeof x.read === 'function') { x.read(); return x.shape; }
  if (typeof x === 'object') { const o = {}; for (const k in x) o[k] = R(x[k]); return o; }
  return x;
}
const S=a=>JSON.stringify(a);
const c1=[
 {name:'add', dims:{M:3,N:4}, body:d=>`return a.add(F([${d.M},${d.N}]),F([${d.M},${d.N}]))`},
 {name:'add_bcast', dims:{M:3,N:4}, body:d=>`return a.add(F([${d.M},${d.N}]),F([${d.N}]))`},
 {name:'add_bcast2', dims:{M:3,N:4}, body:d=>`return a.add(F([${d.M},1]),F([1,${d.N}]))`},
 {name:'add_bcast3', dims:{M:3,N:4}, body:d=>`return a.add(F([${d.M},${d.N}]),F([1]))`},
 {name:'mul', dims:{M:3,N:4}, body:d=>`return a.mul(F([${d.M},${d.N}]),F([${d.N}]))`},
 {name:'mul_bcast', dims:{M:3,N:4}, body:d=>`return a.mul(F([${d.M},1]),F([1,${d.N}]))`},
 {name:'mulBackward', dims:{M:3,N:4}, body:d=>`return a.mulBackward(F([${d.M},${d.N}]),F([${d.M},${d.N}]),F([${d.N}]),true,true)`},
 {name:'mulBackward2', dims:{M:3,N:4}, body:d=>`return a.mulBackward(F([${d.M},${d.N}]),F([${d.M},1]),F([1,${d.N}]),true,true)`},
 {name:'scale', dims:{M:3,N:4}, body:d=>`return a.scale(F([${d.M},${d.N}]),2)`},
 {name:'axpy', dims:{M:3,N:4}, body:d=>`const x=F([${d.M},${d.N}]);a.axpyInPlace(x,F([${d.M},${d.N}]),2);return x`},
 {name:'biasAdd', dims:{M:3,N:4}, body:d=>`return a.biasAdd(F([${d.M},${d.N}]),F([${d.N}]))`},
 {name:'biasAdd3', dims:{B:2,M:3,N:4}, body:d=>`return a.biasAdd(F([${d.B},${d.M},${d.N}]),F([${d.N}]))`},
 {name:'sumRows', dims:{M:3,N:4}, body:d=>`return a.sumRows(F([${d.M},${d.N}]))`},
 {name:'sumRows3', dims:{B:2,M:3,N:4}, body:d=>`return a.sumRows(F([${d.B},${d.M},${d.N}]))`},
 {name:'sumRows1', dims:{N:4}, body:d=>`return a.sumRows(F([${d.N}]))`},
 {name:'sum', dims:{M:3,N:4}, body:d=>`return a.sum(F([${d.M},${d.N}]))`},
 {name:'mean', dims:{M:3,N:4}, body:d=>`return a.mean(F([${d.M},${d.N}]))`},
 {name:'reduceBackward', dims:{M:3,N:4}, body:d=>`return a.reduceBackward(F([]),[${d.M},${d.N}],0.5)`},
 {name:'reduceBackward1', dims:{M:3,N:4}, body:d=>`return a.reduceBackward(F([1]),[${d.M},${d.N}],0.5)`},
 ...['gelu','relu','relu6','tanh'].flatMap(n=>[
  {name:n, dims:{M:3,N:4}, body:d=>`return a.${n}(F([${d.M},${d.N}]))`},
  {name:n+'Backward', dims:{M:3,N:4}, body:d=>`return a.${n}Backward(F([${d.M},${d.N}]),F([${d.M},${d.N}]))`}]),
 {name:'matmul', dims:{M:3,K:5,N:4}, body:d=>`return a.matmul(F([${d.M},${d.K}]),F([${d.K},${d.N}]),false,false)`},
 {name:'matmulTT', dims:{M:3,K:5,N:4}, body:d=>`return a.matmul(F([${d.K},${d.M}]),F([${d.N},${d.K}]),true,true)`},
 {name:'matmulBuiltin', dims:{M:3,K:5,N:4}, body:d=>`return a.matmul(F([${d.M},${d.K}]),F([${d.K},${d.N}]),false,false,'builtin')`},
 {name:'matmulBlas', dims:{M:3,K:5,N:4}, body:d=>`return a.matmul(F([${d.M},${d.K}]),F([${d.K},${d.N}]),false,false,'blas')`},
 {name:'matmulBatched', dims:{B:2,M:3,K:5,N:4}, body:d=>`return a.matmul(F([${d.B},${d.M},${d.K}]),F([${d.B},${d.K},${d.N}]),false,false)`},
 {name:'matmulBcast', dims:{B:2,M:3,K:5,N:4}, body:d=>`return a.matmul(F([${d.B},${d.M},${d.K}]),F([${d.K},${d.N}]),false,false)`},
 {name:'matmulBackward', dims:{B:2,M:3,K:5,N:4}, body:d=>`return a.matmulBackward(F([${d.B},${d.M},${d.N}]),F([${d.B},${d.M},${d.K}]),F([${d.B},${d.K},${d.N}]),false,false,true,true)`},
 {name:'matmulBackwardBc', dims:{B:2,M:3,K:5,N:4}, body:d=>`return a.matmulBackward(F([${d.B},${d.M},${d.N}]),F([${d.B},${d.M},${d.K}]),F([${d.K},${d.N}]),false,false,true,true)`},
 {name:'matmulBackwardT', dims:{M:3,K:5,N:4}, body:d=>`return a.matmulBackward(F([${d.M},${d.N}]),F([${d.K},${d.M}]),F([${d.N},${d.K}]),true,true,true,true)`},
 {name:'linear', dims:{B:2,M:3,K:5,N:4}, body:d=>`return a.linear(F([${d.B},${d.M},${d.K}]),F([${d.N},${d.K}]),F([${d.N}]))`},
 {name:'linearBackward', dims:{B:2,M:3,K:5,N:4}, body:d=>`return a.linearBackward(F([${d.B},${d.M},${d.N}]),F([${d.B},${d.M},${d.K}]),F([${d.N},${d.K}]),true,true,true)`},
 {name:'linearBackward2', dims:{M:3,K:5,N:4}, body:d=>`return a.linearBackward(F([${d.M},${d.N}]),F([${d.M},${d.K}]),F([${d.N},${d.K}]),true,true,true)`},
 {name:'softmax', dims:{B:2,M:3,N:4}, body:d=>`return a.softmax(F([${d.B},${d.M},${d.N}]))`},
 {name:'softmaxBackward', dims:{B:2,M:3,N:4}, body:d=>`return a.softmaxBackward(F([${d.B},${d.M},${d.N}]),F([${d.B},${d.M},${d.N}]))`},
 {name:'layerNorm', dims:{B:2,M:3,N:4}, body:d=>`return a.layerNorm(F([${d.B},${d.M},${d.N}]),F([${d.N}]),F([${d.N}]),1e-5)`},
 {name:'layerNormNoW', dims:{B:2,M:3,N:4}, body:d=>`return a.layerNorm(F([${d.B},${d.M},${d.N}]),null,null,1e-5)`},
 {name:'layerNormBackward', dims:{B:2,M:3,N:4}, body:d=>`const x=F([${d.B},${d.M},${d.N}]);const w=F([${d.N}]);const [y,m,r]=a.layerNorm(x,w,F([${d.N}]),1e-5);return a.layerNormBackward(F([${d.B},${d.M},${d.N}]),x,w,m,r,true,true,true)`},
 {name:'layerNormBackwardNoW', dims:{B:2,M:3,N:4}, body:d=>`const x=F([${d.B},${d.M},${d.N}]);const [y,m,r]=a.layerNorm(x,null,null,1e-5);return a.layerNormBackward(F([${d.B},${d.M},${d.N}]),x,null,m,r,true,false,false)`},
 {name:'embedding', dims:{V:5,D:4,B:2,L:3}, body:d=>`return a.embedding(F([${d.V},${d.D}]),I([${d.B},${d.L}],i=>i%Math.max(${d.V},1)))`},
 {name:'embeddingBackward', dims:{V:5,D:4,B:2,L:3}, body:d=>`return a.embeddingBackward(F([${d.B},${d.L},${d.D}]),I([${d.B},${d.L}],i=>i%Math.max(${d.V},1)),${d.V})`},
 {name:'crossEntropy', dims:{M:3,V:5}, body:d=>`return a.crossEntropy(F([${d.M},${d.V}]),I([${d.M}],i=>${d.V}?i%${d.V}:-100),null,-100)`},
 {name:'crossEntropyRows', dims:{M:3,V:5,R:2}, body:d=>`return a.crossEntropy(F([${d.M},${d.V}]),I([${d.R}],i=>${d.V}?i%${d.V}:-100),I([${d.R}],i=>${d.M}?i%${d.M}:0),-100)`},
 {name:'crossEntropyBackward', dims:{M:3,V:5}, body:d=>`const lg=F([${d.M},${d.V}]),t=I([${d.M}],i=>${d.V}?i%${d.V}:-100);const r=a.crossEntropy(lg,t,null,-100);return a.crossEntropyBackward(1,lg,t,null,r.lse,-100,r.count)`},
 {name:'crossEntropyBackwardRows', dims:{M:3,V:5,R:2}, body:d=>`const lg=F([${d.M},${d.V}]),t=I([${d.R}],i=>${d.V}?i%${d.V}:-100),rw=I([${d.R}],i=>${d.M}?i%${d.M}:0);const r=a.crossEntropy(lg,t,rw,-100);return a.crossEntropyBackward(1,lg,t,rw,r.lse,-100,r.count)`},
 {name:'crossEntropyBackwardCnt', dims:{M:3,V:5}, body:d=>`const lg=F([${d.M},${d.V}]),t=I([${d.M}],i=>${d.V}?i%${d.V}:-100);return a.crossEntropyBackward(1,lg,t,null,F([${d.M}]),-100,0)`},
 {name:'argmaxRows', dims:{B:2,M:3,N:4}, body:d=>`return a.argmaxRows(F([${d.B},${d.M},${d.N}]))`},
 {name:'argmaxRows1', dims:{N:4}, body:d=>`return a.argmaxRows(F([${d.N}]))`},
 {name:'dropout', dims:{M:3,N:4}, body:d=>`return a.dropout(F([${d.M},${d.N}]),0.5,1,1)`},
 {name:'dropoutOff', dims:{M:3,N:4}, body:d=>`return a.dropout(F([${d.M},${d.N}]),0.5,1,1,7)`},
 {name:'dropoutAdd', dims:{M:3,N:4}, body:d=>`return a.dropoutAdd(F([${d.M},${d.N}]),F([${d.M},${d.N}]),0.5,1,1)`},
 {name:'geglu', dims:{M:3,N:4}, body:d=>`return a.geglu(F([${d.M},${d.N}]))`},
 {name:'gegluBackward', dims:{M:3,N:4}, body:d=>`return a.gegluBackward(F([${d.M},${d.N}/2]),F([${d.M},${d.N}]))`},
 {name:'toChannelsLast', dims:{B:2,C:3,H:4,W:5}, body:d=>`return a.toChannelsLast(F([${d.B},${d.C},${d.H},${d.W}]))`},
 {name:'toChannelsFirst', dims:{B:2,C:3,H:4,W:5}, body:d=>`return a.toChannelsFirst(F([${d.B},${d.H},${d.W},${d.C}]))`},
 {name:'adamw', dims:{M:3,N:4}, body:d=>`const p=F([${d.M},${d.N}]);a.adamw(p,F([${d.M},${d.N}]),F([${d.M},${d.N}],0),F([${d.M},${d.N}],0),{lr:1e-3,beta1:.9,beta2:.999,eps:1e-8,weightDecay:.01,step:1});return p`},
 {name:'adamwClip', dims:{M:3,N:4}, body:d=>`const p=F([${d.M},${d.N}]);const g=F([${d.M},${d.N}]);const n=a.gradNorm([g]);a.adamw(p,g,F([${d.M},${d.N}],0),F([${d.M},${d.N}],0),{lr:1e-3,beta1:.9,beta2:.999,eps:1e-8,weightDecay:.01,step:1,clipNorm:n,maxNorm:1,guards:[n]});return p`},
 {name:'emaUpdate', dims:{M:3,N:4}, body:d=>`const p=F([${d.M},${d.N}]);a.emaUpdate(p,F([${d.M},${d.N}]),0.9);return p`},
 {name:'gradNorm', dims:{M:3,N:4}, body:d=>`return a.gradNorm([F([${d.M},${d.N}]),F([${d.N}])])`},
 {name:'clipGradNorm', dims:{M:3,N:4}, body:d=>`return a.clipGradNorm([F([${d.M},${d.N}]),F([${d.N}])],0.1)`},
 {name:'gradNormEmptyList', dims:{M:1}, body:d=>`return [a.gradNorm([]), a.clipGradNorm([],1)]`},
];
const c2 = (() => {
const optsets={
 plain:d=>`{}`,
 kp:d=>`{keyPadding:U([${d.B},${d.L}],i=>i%3?1:0)}`,
 all:d=>`{keyPadding:U([${d.B},${d.L}],1),alibiSlopes:F([${d.H}]),bias:F([${d.B},${d.L},${d.L}]),attnMask:U([${d.B},${d.L},${d.L}],1),tokenMask:U([${d.B},${d.L}],i=>i%2),excludeMaskedKeys:true,entropy:true,biasGrad:true}`,
 chain:d=>`{plainChain:true,entropy:true}`,
};
const cases=[];
for(const [on,o] of Object.entries(optsets)){
 cases.push({name:'attention_'+on, dims:{B:2,L:3,H:2,Dh:4}, body:d=>`const q=F([${d.B},${d.L},${d.H},${d.Dh}]);const o=${o(d)};const r=a.attention(q,F([${d.B},${d.L},${d.H},${d.Dh}]),F([${d.B},${d.L},${d.H},${d.Dh}]),o);const g=a.attentionBackward(F([${d.B},${d.L},${d.H},${d.Dh}]),q,q,q,r.out,r.lse,o,r.entropy?F(r.entropy.shape):null,r.entropy||null);return [r,g]`, extra:[{L:70},{L:70,B:0},{L:70,H:0},{L:70,Dh:0},{Dh:64,L:0},{Dh:64,L:130}]});
 cases.push({name:'attentionQkv_'+on, dims:{B:2,L:3,H:2,Dh:4}, body:d=>`const q=F([${d.B},${d.L},3,${d.H},${d.Dh}]);const o=${o(d)};const r=a.attentionQkv(q,o);const g=a.attentionQkvBackward(F([${d.B},${d.L},${d.H},${d.Dh}]),q,r.out,r.lse,o,r.entropy?F(r.entropy.shape):null,r.entropy||null);return [r,g]`, extra:[{L:70},{L:70,B:0},{Dh:64,L:0}]});
}
// varlen
const vl=(lens,L,H,Dh,extra='')=>`const lens=${JSON.stringify(lens)};const cu=[0];for(const l of lens)cu.push(cu[cu.length-1]+l);const nnz=cu[cu.length-1];const o={cuSeqlens:I([cu.length],i=>cu[i]),maxSeqlen:${L}${extra}};const q=F([nnz,${H},${Dh}]);const r=a.attention(q,q,q,o);const g=a.attentionBackward(F([nnz,${H},${Dh}]),q,q,q,r.out,r.lse,o);const q3=F([nnz,3,${H},${Dh}]);const r2=a.attentionQkv(q3,o);const g2=a.attentionQkvBackward(F([nnz,${H},${Dh}]),q3,r2.out,r2.lse,o);return [r,g,r2,g2]`;
for(const [lens,L] of [[[2,3],3],[[0,0],0],[[0,0],5],[[0,3],3],[[3,0],3],[[],0],[[],4],[[0],0],[[70,0],70]]){
 cases.push({name:'varlen '+JSON.stringify(lens)+' L'+L, dims:{H:2,Dh:4}, body:d=>vl(lens,L,d.H,d.Dh)});
 cases.push({name:'varlenTM '+JSON.stringify(lens)+' L'+L, dims:{H:2,Dh:4}, body:d=>vl(lens,L,d.H,d.Dh,`,tokenMask:U([${lens.reduce((x,y)=>x+y,0)}],i=>i%2),excludeMaskedKeys:true,entropy:true,alibiSlopes:F([${d.H}])`)});
}


return cases;
})();
const c3 = (() => {
const sh=d=>`[${d.B},${d.C},${d.H},${d.W}]`;
const cases=[];
for(const [nm,G] of [['g1',1],['g2',2],['dw',3]]){
 const Cin = G===3?3:4;
 cases.push({name:'conv2d_'+nm, dims:{B:2,C:Cin,H:5,W:5,O:G===3?3:4}, body:d=>`const g=${G};const x=F(${sh(d)});const w=F([${d.O},${d.C}/g|0,3,3]);const y=a.conv2d(x,w,F([${d.O}]),1,1,g);const b=a.conv2dBackward(F(y.shape),x,w,1,1,g,true,true,true);const y2=a.conv2d(x,w,null,2,0,g);const b2=a.conv2dBackward(F(y2.shape),x,w,2,0,g,true,true,true);return [y,b,y2,b2]`, extra:[{C:0,O:G},{C:0,O:G,B:0}]});
 cases.push({name:'conv2d1x1_'+nm, dims:{B:2,C:Cin,H:5,W:5,O:G===3?3:4}, body:d=>`const g=${G};const x=F(${sh(d)});const w=F([${d.O},${d.C}/g|0,1,1]);const y=a.conv2d(x,w,F([${d.O}]),1,0,g);const b=a.conv2dBackward(F(y.shape),x,w,1,0,g,true,true,true);return [y,b]`});
 cases.push({name:'convT_'+nm, dims:{B:2,C:Cin,H:5,W:5,O:G===3?1:2}, body:d=>`const g=${G};const x=F(${sh(d)});const w=F([${d.C},${d.O},3,3]);const y=a.convTranspose2d(x,w,F([${d.O}*g]),2,1,g);const b=a.convTranspose2dBackward(F(y.shape),x,w,2,1,g,true,true,true);return [y,b]`});
}
cases.push({name:'maxPool2d', dims:{B:2,C:3,H:5,W:5}, body:d=>`const x=F(${sh(d)});const [y,am]=a.maxPool2d(x,3,2,1);const dx=a.maxPool2dBackward(F(y.shape),am,x.shape);return [y,am,dx]`, extra:[{H:1,W:1}]});
cases.push({name:'avgPool2d', dims:{B:2,C:3,H:5,W:5}, body:d=>`const x=F(${sh(d)});const y=a.avgPool2d(x,3,2,1,false);const y2=a.avgPool2d(x,3,2,1,true);const dx=a.avgPool2dBackward(F(y.shape),x.shape,3,2,1,false);const dx2=a.avgPool2dBackward(F(y.shape),x.shape,3,2,1,true);return [y,y2,dx,dx2]`, extra:[{H:1,W:1}]});
cases.push({name:'avgPool2dPad', dims:{B:2,C:3,H:5,W:5}, body:d=>`const x=F(${sh(d)});const y=a.avgPool2d(x,2,2,1,false);const dx=a.avgPool2dBackward(F(y.shape),x.shape,2,2,1,false);return [y,dx]`, extra:[{H:1,W:1}]});
cases.push({name:'globalAvgPool', dims:{B:2,C:3,H:5,W:5}, body:d=>`const x=F(${sh(d)});const y=a.globalAvgPool(x);return [y,a.globalAvgPoolBackward(F(y.shape),x.shape)]`});
cases.push({name:'applyMask', dims:{B:2,C:3,H:4,W:4,h:2,w:2}, body:d=>`return a.applyMask(F(${sh(d)}),U([${d.B},${d.h},${d.w}],i=>i%2))`, extra:[{H:0,h:1},{W:0,w:1},{H:0,W:0,h:1,w:1}]});
cases.push({name:'upsampleMask', dims:{B:2,h:2,w:3}, body:d=>`return a.upsampleMask(U([${d.B},${d.h},${d.w}],i=>i%2),2)`});
// batchnorm
cases.push({name:'batchNorm2d', dims:{B:2,C:3,H:4,W:4}, body:d=>`const x=F(${sh(d)});const rm=F([${d.C}],0),rv=F([${d.C}],1);const w=F([${d.C}]);const [y,m,r]=a.batchNorm2d(x,w,F([${d.C}]),rm,rv,null,true,0.1,1e-5);const g=a.batchNorm2dBackward(F(x.shape),x,w,m,r,null,true,true,true,true);const [y2,m2,r2]=a.batchNorm2d(x,w,F([${d.C}]),rm,rv,null,false,0.1,1e-5);const g2=a.batchNorm2dBackward(F(x.shape),x,w,m2,r2,null,false,true,true,true);const s=a.batchNorm2dSums(x,null,null);const s2=a.batchNorm2dSums(x,null,D64([${d.C}]));return [y,g,y2,g2,s,s2]`});
cases.push({name:'batchNorm2dMask', dims:{B:2,C:3,H:4,W:4}, body:d=>`const x=F(${sh(d)});const mk=U([${d.B},${d.H},${d.W}],i=>i%2);const rm=F([${d.C}],0),rv=F([${d.C}],1);const w=F([${d.C}]);const [y,m,r]=a.batchNorm2d(x,w,F([${d.C}]),rm,rv,mk,true,0.1,1e-5);const g=a.batchNorm2dBackward(F(x.shape),x,w,m,r,mk,true,true,true,true);const s=a.batchNorm2dSums(x,mk,null);const gl=a.batchNorm2dBackward(F(x.shape),x,w,m,r,mk,true,true,true,true,D64([2*${d.C}+1],0));return [y,g,s,gl]`});
cases.push({name:'batchNorm2dMask0', dims:{B:2,C:3,H:4,W:4}, body:d=>`const x=F(${sh(d)});const mk=U([${d.B},${d.H},${d.W}],0);const rm=F([${d.C}],0),rv=F([${d.C}],1);const [y,m,r]=a.batchNorm2d(x,null,null,rm,rv,mk,true,0.1,1e-5);const g=a.batchNorm2dBackward(F(x.shape),x,null,m,r,mk,true,true,false,false);return [y,g]`});
cases.push({name:'batchNorm2dNoRun', dims:{B:2,C:3,H:4,W:4}, body:d=>`const x=F(${sh(d)});const [y,m,r]=a.batchNorm2d(x,null,null,null,null,null,true,0.1,1e-5);const g=a.batchNorm2dBackward(F(x.shape),x,null,m,r,null,true,true,false,false);return [y,g]`, extra:[{B:1,H:1,W:1}]});


return cases;
})();
const c4 = (() => {
const cases=[];
const md=(n,d)=>`${n}?i%${n}:0`;
cases.push({name:'labelWordLogits', dims:{M:3,D:4,V:5,K:2}, body:d=>`const h=F([${d.M},${d.D}]),w=F([${d.V},${d.D}]),wd=I([${d.K}],i=>${md(d.V)});const y=a.labelWordLogits(h,w,F([${d.V}]),wd);const g=a.labelWordLogitsBackward(F(y.shape),h,w,wd,true,true,true);return [y,g]`});
cases.push({name:'verbalizerPool', dims:{B:2,T:3,K:4,C:2}, body:d=>`const s=F([${d.B},${d.T},${d.K}]),co=I([${d.K}],i=>${md(d.C)});const y=a.verbalizerPool(s,co,${d.C});return [y,a.verbalizerPoolBackward(F(y.shape),s,co,${d.C})]`});
cases.push({name:'linearCE', dims:{M:3,D:4,V:5}, body:d=>`const h=F([${d.M},${d.D}]),w=F([${d.V},${d.D}]),b=F([${d.V}]),t=I([${d.M}],i=>i==1?-100:${md(d.V)});const r=a.linearCrossEntropy(h,w,b,t,-100,2);const g=a.linearCrossEntropyBackward(1,h,w,b,t,r.lse,-100,r.count,2,true,true,true);const g2=a.linearCrossEntropyBackward(1,h,w,b,t,r.lse,-100,r.count,2,true,true,true,F(h.shape),F(w.shape),F(b.shape));const s=a.linearSample(h,w,b,1,2,2,1.0);return [r,g,g2,s]`, extra:[{V:1},{M:1}]});
cases.push({name:'linearCEallIgnored', dims:{M:3,D:4,V:5}, body:d=>`const h=F([${d.M},${d.D}]),w=F([${d.V},${d.D}]),t=I([${d.M}],-100);const r=a.linearCrossEntropy(h,w,null,t,-100,2);const g=a.linearCrossEntropyBackward(1,h,w,null,t,r.lse,-100,r.count,2,true,true,false);return [r,g]`});
cases.push({name:'linearCEcount', dims:{M:3,D:4,V:5}, body:d=>`const h=F([${d.M},${d.D}]),w=F([${d.V},${d.D}]),t=I([${d.M}],i=>${md(d.V)});const r=a.linearCrossEntropy(h,w,null,t,-100,1000,${d.M});const g=a.linearCrossEntropyBackward(1,h,w,null,t,r.lse,-100,0,1000,true,true,false);return [r,g]`});
cases.push({name:'maskedLinear', dims:{B:2,M:3,K:4,N:5}, body:d=>`const x=F([${d.B},${d.M},${d.K}]),w=F([${d.N},${d.K}]),s=F([${d.N},${d.K}]);const y=a.maskedLinear(x,w,s,F([${d.N}]),0.1);const g=a.maskedLinearBackward(F(y.shape),x,w,s,0.1,true,true);const yp=a.maskedLinearPacked(x,w,U([Math.ceil(${d.N}*${d.K}/8)],255),null);return [y,g,yp]`});
cases.push({name:'asaMask', dims:{B:2,L:3}, body:d=>`const s=F([${d.B},${d.L},${d.L}]),kp=U([${d.B},${d.L}],i=>i%2);const r=a.asaMask(s,kp,1e4);const g=a.asaMaskBackward(F(r.bias.shape),F(r.kept.shape),s,kp,1e4);const r2=a.asaMask(s,null,1e4);const g2=a.asaMaskBackward(null,F(r2.kept.shape),s,null,1e4);return [r,g,r2,g2]`});
cases.push({name:'symKl', dims:{N:3,C:4}, body:d=>`const x=F([${d.N},${d.C}]),y=F([${d.N},${d.C}]);const l=a.symKl(x,y);return [l,a.symKlBackward(F([]),x,y,true,true),a.symKlBackward(F([1]),x,y,true,true)]`});
cases.push({name:'mlmMask', dims:{B:2,L:5}, body:d=>`const ids=I([${d.B},${d.L}],i=>i%10),sel=U([${d.B},${d.L}],i=>i%2);return [a.mlmMask(ids,sel,null,10,3,0.8,0.1,0,10,1,1),a.mlmMask(ids,sel,I([${d.B},${d.L}],i=>i%3),10,3,0.8,0.1,5,6,1,1),a.mlmMask(ids,U([${d.B},${d.L}],0),null,10,3,1,0,0,10,1,1)]`});
cases.push({name:'pgd', dims:{R:6,D:4,E:2}, body:d=>`const like=F([${d.R},${d.D}]);const st=I([${d.E}],i=>Math.min(i*2,${d.R})),ln=I([${d.E}],i=>${d.R}>=i*2+2?2:0);const s=a.pgdRandomStart(like,st,ln,0.1,1,1);const s2=a.pgdRandomStart(like,st,ln,0.1,1,1,5);return [s,s2,a.pgdStep(s,F(like.shape),st,ln,0.01,0.1)]`});
cases.push({name:'imageBatch', dims:{N:2,C:3,H:8,W:8,B:2}, body:d=>`const im=U([${d.N},${d.C},${d.H},${d.W}],i=>i%256);const idx=I([${d.B}],i=>${md(d.N)});const bx=F([${d.B},4],0);const bd=bx.read();for(let b=0;b<${d.B};b++){bd[b*4+2]=4;bd[b*4+3]=4;}const bx2=a.fromTypedArray(bd,[${d.B},4]);return a.imageBatch(im,idx,bx2,U([${d.B}],i=>i%2),F([${d.C}],0.5),F([${d.C}],0.25),5,5)`, extra:[{B:2,H:1,W:1}]});
// mim tokens
cases.push({name:'maskFromScores', dims:{B:2,L:6}, body:d=>`const s=F([${d.B},${d.L}]);return [a.maskFromScores(s,Math.min(2,${d.L})),a.maskFromScores(s,0),a.maskFromScores(s,${d.L})]`});
cases.push({name:'uniformNoise', dims:{B:2,L:6}, body:d=>`return a.uniformNoise([${d.B},${d.L}],1,1,0,1)`});
cases.push({name:'restoreIndex', dims:{B:2,L:6}, body:d=>`const r=a.maskFromScores(F([${d.B},${d.L}]),Math.min(2,${d.L}));return [a.restoreIndex(r.idsRestore,Math.min(2,${d.L}),false),a.restoreIndex(r.idsRestore,Math.min(2,${d.L}),true),a.restoreIndex(r.idsRestore,0,true)]`});
cases.push({name:'assembleTokens', dims:{B:2,Ls:3,D:4,Lo:5,T:1}, body:d=>`const x=F([${d.B},${d.Ls},${d.D}]);const idx=I([${d.B},${d.Lo}],i=>${d.Ls}? (i%2? i%${d.Ls} : (${d.T}?-1:i%${d.Ls})) : (${d.T}?-1:0));const tk=F([${d.T},${d.D}]);const y=a.assembleTokens(x,idx,tk);return [y,a.assembleTokensBackward(F(y.shape),idx,${d.Ls},${d.T},true,true)]`});
cases.push({name:'assembleTokensNoTok', dims:{B:2,Ls:3,D:4,Lo:5}, body:d=>`const x=F([${d.B},${d.Ls},${d.D}]);const idx=I([${d.B},${d.Lo}],i=>${md(d.Ls)});const y=a.assembleTokens(x,idx,null);return [y,a.assembleTokensBackward(F(y.shape),idx,${d.Ls},0,true,false)]`});
cases.push({name:'patchify', dims:{B:2,C:3,H:4,W:4}, body:d=>`const im=F([${d.B},${d.C},${d.H},${d.W}]);const p=a.patchify(im,2);return [p,a.unpatchify(F(p.shape),2,${d.C}||1,${d.H},${d.W})]`});
cases.push({name:'unpatchify', dims:{B:2,C:3,H:4,W:4}, body:d=>`return a.unpatchify(F([${d.B},(${d.H}/2)*(${d.W}/2),4*${d.C}]),2,${d.C},${d.H},${d.W})`});
cases.push({name:'tokenMean', dims:{B:2,L:3,D:4}, body:d=>`const y=a.tokenMean(F([${d.B},${d.L},${d.D}]));return [y,a.tokenMeanBackward(F(y.shape),${d.L}||1)]`});
cases.push({name:'tokenMeanBackward', dims:{B:2,D:4}, body:d=>`return a.tokenMeanBackward(F([${d.B},${d.D}]),3)`});
// mim loss
for(const opt of ['{}','{kind:"l1"}','{normPix:true}','{normPix:true,kind:"l1",eps:1e-6}'])
 cases.push({name:'maskedPatchLoss'+opt, dims:{B:2,L:3,P:4}, body:d=>`const p=F([${d.B},${d.L},${d.P}]),t=F([${d.B},${d.L},${d.P}]),m=U([${d.B},${d.L}],i=>i%2);const r=a.maskedPatchLoss(p,t,m,${opt});const g=a.maskedPatchLossBackward(1,p,t,m,${opt},true,true);const m0=U([${d.B},${d.L}],0);const r0=a.maskedPatchLoss(p,t,m0,${opt});const g0=a.maskedPatchLossBackward(1,p,t,m0,${opt},true,true);return [r,g,r0,g0]`, extra:[{P:2},{P:1}]});
cases.push({name:'maskedCosine', dims:{B:2,L:3,D:4}, body:d=>`const x=F([${d.B},${d.L},${d.D}]),m=U([${d.B},${d.L}],i=>i%2);const r=a.maskedCosine(x,m,1e-6);const m1=U([${d.B},${d.L}],1);return [r,a.maskedCosineBackward(1,x,m,1e-6),a.maskedCosine(x,m1,1e-6),a.maskedCosineBackward(1,x,m1,1e-6)]`, extra:[{L:1},{L:2}]});
cases.push({name:'rankingLoss', dims:{B:2,L:3}, body:d=>`const p=F([${d.B},${d.L}]),t=F([${d.B},${d.L}]),m=U([${d.B},${d.L}],i=>i%2);const r=a.rankingLoss(p,t,m);const m1=U([${d.B},${d.L}],1);return [r,a.rankingLossBackward(1,p,t,m),a.rankingLoss(p,t,m1),a.rankingLossBackward(1,p,t,m1)]`, extra:[{L:1}]});


return cases;
})();
// Cases whose full-size call does not run as written (argument order or broadcasting these ops do not have).
const skip = new Set(['add_bcast', 'add_bcast2', 'add_bcast3', 'mul', 'mul_bcast', 'mulBackward', 'mulBackward2', 'gradNormEmptyList', 'linearCEcount']);
for (const c of [...c1, ...c2, ...c3, ...c4]) {
  if (skip.has(c.name)) continue;
  const keys = Object.keys(c.dims);
  const variants = [{ ...c.dims }];
  for (const k of keys) if (c.dims[k] !== 0) variants.push({ ...c.dims, [k]: 0 });
  if (keys.length > 1) variants.push(Object.fromEntries(keys.map((k) => [k, 0])));
  for (const e of c.extra || []) variants.push({ ...c.dims, ...e });
  variants.forEach((d, i) => {
    console.log(`CASE ${c.name} ${i === 0 ? 'full' : 'empty'} ${JSON.stringify(d)}`);
    try {
      const r = new Function('a', 'F', 'D64', 'I', 'U', c.body(d))(a, F, D64, I, U);
      console.log(`RESULT ${JSON.stringify(R(r))}`);
    } catch (e) {
      console.log(`THROW ${String(e && e.message).split('\n')[0].slice(0, 200)}`);
    }
  });
}
console.log('DONE');
