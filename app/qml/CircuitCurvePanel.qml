import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The faithfulness / completeness curve of a neuron graph's circuits (cs::neurons::evaluateCircuits,
// Marks et al.): for k units chosen by the graph's method on its prompt and counterfactual, the
// metric with every other unit mean-ablated (faithfulness) and with the k ablated (completeness),
// computed on the engine worker with progress and Cancel. A dashed line marks the pruned graph's
// unit count.
Rectangle {
    id: panel

    required property ExplorerController explorer
    readonly property ExplorerNeurons neurons: explorer.neurons

    color: Theme.panel
    border.color: Theme.border

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: Theme.padding
        spacing: Theme.spacing

        Label {
            text: "Circuit faithfulness and completeness"
            font.bold: true
            font.pointSize: Theme.baseSize + 1
            color: Theme.text
        }
        Label {
            Layout.fillWidth: true
            visible: panel.neurons.graphInUnits
            text: panel.neurons.metricText
            wrapMode: Text.Wrap
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        }
        RowLayout {
            Layout.fillWidth: true
            Button {
                objectName: "curveButton"
                text: "Compute curve"
                enabled: panel.neurons.graphInUnits && !panel.neurons.computingCurve
                onClicked: panel.neurons.computeCurve()
            }
            Button {
                objectName: "cancelCurveButton"
                visible: panel.neurons.computingCurve
                text: "Cancel"
                onClicked: panel.neurons.cancelCurve()
            }
            ProgressBar {
                visible: panel.neurons.computingCurve
                Layout.fillWidth: true
                from: 0
                to: 1
                value: panel.neurons.curveProgress
            }
        }
        Label {
            objectName: "curveText"
            Layout.fillWidth: true
            text: panel.neurons.curveText
            wrapMode: Text.Wrap
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        }

        Canvas {
            id: plot
            objectName: "curvePlot"
            Layout.fillWidth: true
            Layout.preferredHeight: Math.min(300, Math.max(180, panel.height * 0.45))
            visible: panel.neurons.curvePoints.length > 0

            readonly property var points: panel.neurons.curvePoints
            readonly property int mark: panel.neurons.curveMark
            readonly property int units: panel.neurons.unitCount
            onPointsChanged: requestPaint()
            onMarkChanged: requestPaint()
            onWidthChanged: requestPaint()
            onHeightChanged: requestPaint()
            Connections {
                target: Theme
                function onDarkChanged() { plot.requestPaint() }
            }

            // k on a log axis from 1 to the unit count; both scores on [min(0, ...), max(1, ...)].
            function xOf(k, left, w) {
                const top = Math.max(2, units)
                return left + w * Math.log(Math.max(1, k)) / Math.log(top)
            }
            onPaint: {
                const ctx = getContext("2d")
                ctx.reset()
                const left = 40, right = 28, topM = 18, bottom = 28
                const w = width - left - right, h = height - topM - bottom
                let lo = 0, hi = 1
                for (const p of points) {
                    lo = Math.min(lo, p.faithfulness, p.completeness)
                    hi = Math.max(hi, p.faithfulness, p.completeness)
                }
                const yOf = v => topM + h * (hi - v) / (hi - lo)
                ctx.font = "10px sans-serif"
                ctx.fillStyle = Theme.textMuted
                ctx.strokeStyle = Theme.divider
                ctx.lineWidth = 1
                for (const v of [0, 0.5, 1]) {
                    ctx.beginPath()
                    ctx.moveTo(left, yOf(v))
                    ctx.lineTo(left + w, yOf(v))
                    ctx.stroke()
                    ctx.fillText(v.toFixed(1), 8, yOf(v) + 3)
                }
                for (const k of [1, 10, 100, 1000, 10000]) {
                    if (k > Math.max(2, units))
                        break
                    ctx.fillText(String(k), xOf(k, left, w) - 4, topM + h + 14)
                }
                ctx.fillText("k (units in the circuit)", left + w / 2 - 50, topM + h + 26)
                if (mark > 0) {
                    ctx.strokeStyle = Theme.textFaint
                    ctx.setLineDash([4, 3])
                    ctx.beginPath()
                    ctx.moveTo(xOf(mark, left, w), topM)
                    ctx.lineTo(xOf(mark, left, w), topM + h)
                    ctx.stroke()
                    ctx.setLineDash([])
                    // The label on the side of the line with room for it.
                    const x = xOf(mark, left, w)
                    ctx.fillText("pruned graph: " + mark, x + 94 > left + w ? x - 94 : x + 4, topM - 6)
                }
                const series = [["faithfulness", Theme.positive], ["completeness", Theme.negative]]
                for (const [key, colour] of series) {
                    ctx.strokeStyle = colour
                    ctx.fillStyle = colour
                    ctx.lineWidth = 2
                    ctx.beginPath()
                    points.forEach((p, i) => {
                        const x = xOf(p.k, left, w), y = yOf(p[key])
                        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y)
                    })
                    ctx.stroke()
                    for (const p of points) {
                        ctx.beginPath()
                        ctx.arc(xOf(p.k, left, w), yOf(p[key]), 2.5, 0, 2 * Math.PI)
                        ctx.fill()
                    }
                }
            }
        }
        RowLayout {
            visible: plot.visible
            spacing: Theme.spacing
            Rectangle { width: 14; height: 3; color: Theme.positive }
            Label { text: "faithfulness"; color: Theme.text; font.pointSize: Theme.smallSize }
            Rectangle { width: 14; height: 3; color: Theme.negative }
            Label { text: "completeness (the circuit ablated)"; color: Theme.text; font.pointSize: Theme.smallSize }
        }
        ListView {
            objectName: "curveList"
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            model: panel.neurons.curvePoints
            header: Label {
                visible: panel.neurons.curvePoints.length > 0
                text: "k · faithfulness · completeness"
                color: Theme.textFaint
                font.pointSize: Theme.smallSize
            }
            delegate: Label {
                required property var modelData
                text: modelData.k + " · " + modelData.faithfulness.toFixed(3) + " · " + modelData.completeness.toFixed(3)
                      + (modelData.k === panel.neurons.curveMark ? "  ← pruned graph" : "")
                font.family: Theme.monoFamily
                font.pointSize: Theme.smallSize
                color: Theme.text
            }
        }
    }
}
