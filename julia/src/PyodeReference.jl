"""
    PyodeReference

The DiffEqFlux.jl reference of pyode's cross-validation: reads a case (`<name>.npz` with
`<name>.json` beside it, layout in docs/crossval.md), solves it with an OrdinaryDiffEq
solver chosen by name and differentiates the case's loss with an explicitly chosen
SciMLSensitivity adjoint. Case arrays are (batch, dim) and (time, batch, dim), NumPy's
order; Julia works on (dim, batch) and (dim, batch, time): `to_julia` and `to_numpy`
transpose at the boundary, once.
"""
module PyodeReference

using ChainRulesCore: ignore_derivatives
using ComponentArrays: ComponentArrays, ComponentArray
using DiffEqFlux: DiffEqFlux, NeuralODE
using JSON: JSON
using Lux: Lux, Chain, Dense, elu, relu, softplus
using NPZ: npzread
using OrdinaryDiffEq: OrdinaryDiffEq, ODEProblem, solve
using OrdinaryDiffEqLowOrderRK: DP5
using OrdinaryDiffEqRosenbrock: Rodas5P
using OrdinaryDiffEqTsit5: Tsit5
using OrdinaryDiffEqVerner: Vern9
using Random: Xoshiro
using SciMLSensitivity: SciMLSensitivity, BacksolveAdjoint, GaussAdjoint, InterpolatingAdjoint, QuadratureAdjoint,
    ZygoteVJP
using Zygote: Zygote

export run_case

const SOLVERS = Dict("Tsit5" => Tsit5, "DP5" => DP5, "Vern9" => Vern9, "Rodas5P" => Rodas5P)
const SENSEALGS = ("InterpolatingAdjoint", "QuadratureAdjoint", "BacksolveAdjoint", "GaussAdjoint")
"SiLU (swish), x * sigmoid(x), written out as JAX's `jax.nn.silu`."
silu(x) = x / (1 + exp(-x))

const ACTIVATIONS = Dict("tanh" => tanh, "softplus" => softplus, "elu" => elu, "relu" => relu, "silu" => silu)

"The activations' derivatives, for the trace of a `cnf` field's Jacobian (Zygote differentiates them)."
const DERIVATIVES = Dict(
    "tanh" => x -> 1 - tanh(x)^2,
    "softplus" => x -> 1 / (1 + exp(-x)),
    "elu" => x -> x > 0 ? one(x) : exp(x),
    "relu" => x -> x > 0 ? one(x) : zero(x),
    "silu" => x -> (s = 1 / (1 + exp(-x)); s * (1 + x * (1 - s))),
)

"Evaluations of the vector field since the last reset (each VJP evaluates it once more)."
const EVALUATIONS = Ref(0)

count_evaluation() = ignore_derivatives(() -> EVALUATIONS[] += 1)

"""
    solver(name)

The OrdinaryDiffEq algorithm called `name` (Tsit5, DP5, Vern9 or Rodas5P).
"""
function solver(name::AbstractString)
    haskey(SOLVERS, name) || throw(ArgumentError("unknown solver $name; choose one of $(sort(collect(keys(SOLVERS))))"))
    return SOLVERS[name]()
end

"""
    sensitivity(name; reltol, abstol)

The SciMLSensitivity adjoint called `name`, always with Zygote vector-Jacobian products, so
that the reference never depends on a default.
"""
function sensitivity(name::AbstractString; reltol::Real, abstol::Real)
    name == "InterpolatingAdjoint" && return InterpolatingAdjoint(; autojacvec = ZygoteVJP())
    name == "QuadratureAdjoint" &&
        return QuadratureAdjoint(; autojacvec = ZygoteVJP(), reltol = reltol, abstol = abstol)
    name == "BacksolveAdjoint" && return BacksolveAdjoint(; autojacvec = ZygoteVJP(), checkpointing = true)
    name == "GaussAdjoint" && return GaussAdjoint(; autojacvec = ZygoteVJP())
    throw(ArgumentError("unknown sensealg $name; choose one of $SENSEALGS"))
end

"NumPy (batch, dim) or (time, batch, dim) to Julia (dim, batch) or (dim, batch, time)."
to_julia(x::AbstractArray) = permutedims(x, reverse(1:ndims(x)))

"Julia (dim, batch[, time]) back to NumPy's (batch, dim) or (time, batch, dim)."
to_numpy(x::AbstractArray) = permutedims(x, reverse(1:ndims(x)))

layer_count(arrays) = count(startswith("weight_"), keys(arrays))

"""
    lux_model(sizes, activation)

A Lux `Chain`: a layer counting evaluations, then `Dense` layers of the given sizes with
the activation after every one but the last (pyode's `MLPField`). The Dense layers are
`layer_2`, `layer_3`, ... of the Chain.
"""
function lux_model(sizes::AbstractVector{<:Integer}, activation::AbstractString)
    σ = ACTIVATIONS[activation]
    n = length(sizes) - 1
    dense = [Dense(sizes[k] => sizes[k + 1], k < n ? σ : identity) for k in 1:n]
    return Chain(Lux.WrappedFunction(x -> (count_evaluation(); x)), dense...)
end

"""
    lux_parameters(arrays)

The case's `weight_k` (out, in) and `bias_k` (out,), k = 0, 1, ..., as the `ComponentArray`
of `lux_model`'s Chain (`layer_1` counts and has no parameters). Lux's Dense keeps the same
(out, in) layout, and NPZ.jl reads C-ordered arrays with NumPy's indices: no transposition.
"""
function lux_parameters(arrays::AbstractDict)
    n = layer_count(arrays)
    names = Tuple(Symbol("layer_$k") for k in 1:(n + 1))
    dense = Tuple(
        (; weight = Matrix{Float64}(arrays["weight_$k"]), bias = Vector{Float64}(arrays["bias_$k"]))
            for k in 0:(n - 1)
    )
    return ComponentArray(NamedTuple{names}((NamedTuple(), dense...)))
end

"""
    cnf_parameters(arrays)

A `cnf` case's `weight_k` (out, in) and `bias_k` (out,) as a `ComponentArray` with the case's own
names (no Lux chain: the augmented dynamics are written out below).
"""
function cnf_parameters(arrays::AbstractDict)
    n = layer_count(arrays)
    names = Tuple(Symbol(kind, "_", k) for k in 0:(n - 1) for kind in ("weight", "bias"))
    values = Tuple(
        kind == "weight" ? Matrix{Float64}(arrays["weight_$k"]) : Vector{Float64}(arrays["bias_$k"])
            for k in 0:(n - 1) for kind in ("weight", "bias")
    )
    return ComponentArray(NamedTuple{names}(values))
end

"""
    value_and_tangent(p, h, u, activation, n_layers)

The MLP's value at inputs `h` (in, batch) and its directional derivative along `u` (in, batch),
carried forward together through the layers: a -> W h + b, u -> W u, then s(a) and s'(a) .* (W u)
after every layer but the last.
"""
function value_and_tangent(p, h, u, activation::AbstractString, n_layers::Integer)
    σ, σ′ = ACTIVATIONS[activation], DERIVATIVES[activation]
    for k in 1:n_layers
        weight = getproperty(p, Symbol("weight_", k - 1))
        bias = getproperty(p, Symbol("bias_", k - 1))
        a = weight * h .+ bias
        v = weight * u
        if k < n_layers
            h, u = σ.(a), σ′.(a) .* v
        else
            h, u = a, v
        end
    end
    return h, u
end

"""
    cnf_dynamics(field)

The augmented dynamics of a continuous normalising flow on states u = [z; l] (dim + 1, batch):
dz/dt = f(t, z), dl/dt = -tr(df/dz), the trace exact as the sum over input directions e_i of the
i-th entry of (df/dz) e_i (pyode's `CNFDynamics`), differentiated by Zygote like any other field.
"""
function cnf_dynamics(field)
    activation = field["activation"]
    time_input = field["time_input"]
    n_layers = length(field["sizes"]) - 1
    function dynamics(u, p, t)
        count_evaluation()
        d = size(u, 1) - 1
        z = u[1:d, :]
        h = time_input ? vcat(z, fill(t, 1, size(z, 2))) : z
        directions = ignore_derivatives(
            () -> [Float64.((1:size(h, 1)) .== i) .* ones(1, size(h, 2)) for i in 1:d]
        )
        value = first(value_and_tangent(p, h, first(directions), activation, n_layers))
        trace = reduce(
            +, [last(value_and_tangent(p, h, directions[i], activation, n_layers))[i:i, :] for i in 1:d]
        )
        return vcat(value, -trace)
    end
    return dynamics
end

"Gradient of the `ComponentArray` parameters back in the case's names and layouts."
function parameter_gradients(kind::AbstractString, grad, n_layers::Integer)
    kind == "vdp" && return ["theta"], Any[Vector(grad)]
    names, values = String[], Any[]
    if kind == "cnf"
        for k in 0:(n_layers - 1)
            append!(names, ["weight_$k", "bias_$k"])
            append!(values, [Matrix(getproperty(grad, Symbol("weight_", k))), Vector(getproperty(grad, Symbol("bias_", k)))])
        end
        return names, values
    end
    for k in 1:n_layers
        layer = getproperty(grad, Symbol("layer_$(k + 1)"))
        append!(names, ["weight_$(k - 1)", "bias_$(k - 1)"])
        append!(values, [Matrix(layer.weight), Vector(layer.bias)])
    end
    return names, values
end

"dx/dt = v, dv/dt = mu (1 - x^2) v - x on states (2, batch); p = [mu]."
function van_der_pol(u, p, t)
    count_evaluation()
    x = u[1:1, :]
    v = u[2:2, :]
    return vcat(v, p[1] .* (1 .- x .^ 2) .* v .- x)
end

"The MLP's output at state u (dim, batch), t appended as the last input feature when the case says so."
function mlp_input_output(model, u, p, state, t, field)
    input = field["time_input"] ? vcat(u, fill(t, 1, size(u, 2))) : u
    return first(model(input, p, state))
end

"""
    trajectory_function(meta, arrays, ts, alg, sensealg, reltol, abstol)

A function (u0, p) -> trajectory (dim, batch, time) and the parameters p of the case.
An autonomous MLP runs through DiffEqFlux's `NeuralODE`; a time-dependent MLP (t as the
last input feature), the augmented dynamics of a `cnf` case and Van der Pol through a plain
`ODEProblem`, as `NeuralODE` ignores t; so does a second-order field (`sonode`: u = (x, v),
du/dt = (v, MLP(u))), whose MLP gives the acceleration, half the state.
"""
function trajectory_function(meta, arrays, ts, alg, sensealg, reltol, abstol)
    field = meta["field"]
    tspan = (first(ts), last(ts))
    options = (; saveat = ts, reltol = reltol, abstol = abstol, sensealg = sensealg)
    if field["kind"] == "vdp"
        p = Vector{Float64}(arrays["theta"])
        solve_vdp(u0, p) = Array(solve(ODEProblem{false}(van_der_pol, u0, tspan, p), alg; options...))
        return solve_vdp, p
    end
    if field["kind"] == "cnf"
        augmented = cnf_dynamics(field)
        solve_cnf(u0, p) = Array(solve(ODEProblem{false}(augmented, u0, tspan, p), alg; options...))
        return solve_cnf, cnf_parameters(arrays)
    end
    model = lux_model(Int.(field["sizes"]), field["activation"])
    _, state = Lux.setup(Xoshiro(0), model)
    p = lux_parameters(arrays)
    if field["kind"] == "sonode"
        half = last(field["sizes"])
        second_order(u, p, t) = vcat(u[(half + 1):end, :], mlp_input_output(model, u, p, state, t, field))
        solve_sonode(u0, p) = Array(solve(ODEProblem{false}(second_order, u0, tspan, p), alg; options...))
        return solve_sonode, p
    end
    if field["time_input"]
        mlp_with_time(u, p, t) = mlp_input_output(model, u, p, state, t, field)
        solve_mlp(u0, p) = Array(solve(ODEProblem{false}(mlp_with_time, u0, tspan, p), alg; options...))
        return solve_mlp, p
    end
    node = NeuralODE(model, tspan, alg; options...)
    solve_node(u0, p) = Array(first(node(u0, p, state)))
    return solve_node, p
end

"""
    run_case(path; solver_name, sensealg_name, reltol, abstol)

Solve the case at `path` (its .npz; the .json beside it) and differentiate
`sum(cotangent .* trajectory)`. Returns a NamedTuple: `trajectory` (time, batch, dim),
`grad_y0` (batch, dim), `grad_names` and `grad_values` (the case's parameter names and
layouts), `nfe_forward`, `nfe_backward`, `method` and `versions`.
"""
function run_case(
        path::AbstractString;
        solver_name::AbstractString,
        sensealg_name::AbstractString,
        reltol::Real,
        abstol::Real
    )
    arrays = npzread(splitext(path)[1] * ".npz")
    meta = JSON.parsefile(splitext(path)[1] * ".json")
    ts = Vector{Float64}(arrays["ts"])
    u0 = to_julia(Matrix{Float64}(arrays["y0"]))
    cotangent = to_julia(Array{Float64, 3}(arrays["cotangent"]))
    alg = solver(solver_name)
    sensealg = sensitivity(sensealg_name; reltol = reltol, abstol = abstol)
    trajectory, p = trajectory_function(meta, arrays, ts, alg, sensealg, reltol, abstol)

    EVALUATIONS[] = 0
    ys = trajectory(u0, p)
    nfe_forward = EVALUATIONS[]
    EVALUATIONS[] = 0
    grad_u0, grad_p = Zygote.gradient((u0, p) -> sum(cotangent .* trajectory(u0, p)), u0, p)
    nfe_backward = EVALUATIONS[] - nfe_forward
    grad_p isa ComponentArray || p isa Vector || (grad_p = ComponentArray(vec(grad_p), ComponentArrays.getaxes(p)...))

    kind = meta["field"]["kind"]
    names, values = parameter_gradients(kind, grad_p, kind == "vdp" ? 0 : layer_count(arrays))
    return (;
        trajectory = to_numpy(ys),
        grad_y0 = to_numpy(grad_u0),
        grad_names = names,
        grad_values = values,
        nfe_forward = nfe_forward,
        nfe_backward = nfe_backward,
        method = "$(kind == "mlp" && !meta["field"]["time_input"] ? "DiffEqFlux.NeuralODE" : "ODEProblem") " *
            "solved with $solver_name, Zygote.gradient through sensealg = $sensealg_name(autojacvec = ZygoteVJP())",
        versions = versions(),
    )
end

"Versions of the packages doing the work."
function versions()
    modules = (; DiffEqFlux, SciMLSensitivity, OrdinaryDiffEq, Lux, ComponentArrays, Zygote)
    return Dict("julia" => string(VERSION), (string(k) => string(pkgversion(m)) for (k, m) in pairs(modules))...)
end

end
